#include "client/query_commands.h"

#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/format.h"
#include "client/saved_answer.h"
#include "query/sql.h"

namespace fedshare::client {
namespace {

// Prints `saved` in `output` and writes it to `save_path` when given.
int PrintAndSave(const v1::SavedAnswer& saved, const std::string& output,
                 const std::string& save_path, bool all_partners = false) {
  absl::StatusOr<std::string> text = RenderAnswer(saved, output, all_partners);
  if (!text.ok()) return Fail(text.status());
  std::cout << *text;
  std::cout.flush();
  if (!save_path.empty()) {
    if (absl::Status s = WriteSavedAnswer(save_path, saved); !s.ok()) return Fail(s);
  }
  return 0;
}

// Shows partners answering as they come, on stderr: on a terminal one line
// per partner (past kPartnersListed partners asked, per partner that did not
// answer) and a progress line rewritten in place, else one line per partner
// ("progress N/M: ORG STATE ...").
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool terminal) : terminal_(terminal) {}
  ~ProgressPrinter() {
    if (terminal_ && shown_) std::cerr << "\r\x1b[K" << std::flush;
  }
  void Show(const v1::FederatedAggregateProgress& p) {
    // The event's partners ended in order, the last as the finished()th.
    int finished = p.finished() - p.partners_size();
    std::string lines;
    for (const v1::PartnerCoverage& c : p.partners()) {
      ++finished;
      std::string line = absl::StrCat(
          c.org_id(), " ", absl::AsciiStrToLower(v1::PartnerCoverage::State_Name(c.state())));
      if (c.state() == v1::PartnerCoverage::ANSWERED) {
        absl::StrAppend(&line, " (", c.released_cells(), " cell(s) released, ", c.withheld_cells(),
                        " withheld)");
      } else if (!c.reason().empty()) {
        absl::StrAppend(&line, ": ", c.reason());
      }
      if (!terminal_) {
        absl::StrAppend(&lines, "progress ", finished, "/", p.asked(), ": ", line, "\n");
        continue;
      }
      // With more partners than a table lists, only those that did not
      // answer get a line of their own; the progress line counts the others.
      if (p.asked() <= kPartnersListed || c.state() != v1::PartnerCoverage::ANSWERED) {
        absl::StrAppend(&lines, "\r\x1b[K  ", line, "\n");
      }
    }
    if (!terminal_) {
      std::cerr << lines << std::flush;
      return;
    }
    shown_ = true;
    std::cerr << lines << "\r\x1b[K[" << p.finished() << "/" << p.asked() << "] "
              << (p.finished() < p.asked()
                      ? absl::StrCat("waiting for ", p.asked() - p.finished(), " partner(s)...")
                      : std::string("combining..."))
              << std::flush;
  }

 private:
  bool terminal_;
  bool shown_ = false;
};

}  // namespace

int RunQuery(const Globals& g, const QueryArgs& a) {
  const std::string& sql = a.sql;
  const std::string& output = a.output;
  const std::string& save_path = a.save_path;
  // Refuse a bad --output before the question spends a repeat-limit slot.
  if (absl::Status s = CheckRenderFormat(output); !s.ok()) return Fail(s);
  absl::StatusOr<v1::AggregateQuery> query = ParseSql(sql);
  if (!query.ok()) return Fail(query.status());
  query->set_query_id(absl::StrCat("q-", absl::ToUnixMillis(absl::Now())));
  bool federated = a.all_peers || !a.peers.empty() || !a.group.empty();
  const std::string node = !g.node.empty() ? g.node
                           : federated     ? "127.0.0.1:7444"
                                           : "127.0.0.1:7443";
  auto client = Dial(g, node);
  if (!client.ok()) return Fail(client.status());
  if (!federated) {
    v1::AggregateRequest direct;
    *direct.mutable_query() = *query;
    direct.set_dry_run(a.dry_run);
    absl::StatusOr<v1::AggregateResult> r = (*client)->Aggregate(direct);
    if (!r.ok()) return Fail(r.status(), Listener::kPeer);
    return PrintAndSave(SaveDirect(sql, *query, node, *r), output, save_path);
  }
  v1::FederatedAggregateRequest request;
  *request.mutable_query() = *query;
  for (absl::string_view p : absl::StrSplit(a.peers, ',', absl::SkipEmpty())) {
    request.add_peers(std::string(absl::StripAsciiWhitespace(p)));
  }
  request.set_all_peers(a.all_peers);
  request.set_group(a.group);
  request.set_deadline_ms(a.deadline_ms);
  request.set_dry_run(a.dry_run);
  // Always the stream: it brings an answer of any number of partners, in
  // parts, where one message could not.
  const bool terminal = isatty(STDERR_FILENO) == 1;
  ProgressPrinter printer(terminal);
  std::function<void(const v1::FederatedAggregateProgress&)> show;
  if (a.progress || terminal) {
    show = [&](const v1::FederatedAggregateProgress& p) { printer.Show(p); };
  }
  absl::StatusOr<v1::FederatedAggregateResponse> r =
      (*client)->FederatedAggregateStream(request, show);
  if (!r.ok()) return Fail(r.status(), Listener::kLocal);
  if (int code =
          PrintAndSave(SaveFederated(sql, *query, node, *r), output, save_path, a.all_partners);
      code != 0) {
    return code;
  }
  // A total that silently misses a partner is the worst wrong answer: fewer
  // answers than asked for is a failure unless the caller settles for less.
  const int asked = r->coverage_size();
  int answered = 0;
  std::vector<std::string> missing;
  for (const v1::PartnerCoverage& c : r->coverage()) {
    if (c.state() == v1::PartnerCoverage::ANSWERED) {
      ++answered;
    } else {
      missing.push_back(absl::StrCat(
          c.org_id(), " ", absl::AsciiStrToLower(v1::PartnerCoverage::State_Name(c.state())),
          c.reason().empty() ? "" : ": ", c.reason()));
    }
  }
  const int wanted = a.min_coverage < 0 ? asked : a.min_coverage;
  if (answered < wanted) {
    std::cerr << "fedshare: incomplete: " << answered << " of " << asked
              << " partners answered, fewer than --min-coverage " << wanted
              << " (the figures above leave out the others):\n";
    for (const std::string& m : missing) std::cerr << "  " << m << "\n";
    return kExitIncomplete;
  }
  return 0;
}

int RunShow(const std::string& file, const std::string& output, bool all_partners) {
  absl::StatusOr<v1::SavedAnswer> saved = ReadSavedAnswer(file);
  if (!saved.ok()) return Fail(saved.status());
  absl::StatusOr<std::string> text = RenderAnswer(*saved, output, all_partners);
  if (!text.ok()) return Fail(text.status());
  std::cout << *text;
  return 0;
}

}  // namespace fedshare::client
