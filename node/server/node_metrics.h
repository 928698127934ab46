// The node's Prometheus metrics (DESIGN §12, docs/operators.md#monitoring):
// defines every family and connects it to what it counts.
//
//   fedshare_questions_total{method,outcome,rule}   every audited question:
//       outcome answered|refused|failed; rule names the deciding rule ("" when
//       answered); a question whose audit append failed is
//       outcome="failed",rule="audit-unavailable"
//   fedshare_audit_appends_total{result}            ok|error
//   fedshare_answer_stage_seconds{stage}            where each answered
//       exact-mode question's time went (engine::AnswerStages): checks, queue,
//       limits, consent, scan, disclosure, audit
//   fedshare_peer_call_seconds{peer}                fan-out call latency per partner
//   fedshare_fanout_partners_total{peer,state}      fan-out coverage per partner
//   fedshare_ingest_rows_total{dataset,result}      written|rejected
//   fedshare_audit_entries                          entries in the log
//   fedshare_rocksdb_*                              store size and block cache
//   fedshare_certificate_days_left{file}            "cert" and "ca" (earliest
//       notAfter in the bundle); -1 when unreadable
//
// No label ever carries a subject id.
#ifndef FEDSHARE_NODE_SERVER_NODE_METRICS_H_
#define FEDSHARE_NODE_SERVER_NODE_METRICS_H_

#include "fedshare/v1/admin.pb.h"
#include "fedshare/v1/config.pb.h"
#include "node/audit/audit_log.h"
#include "node/common/clock.h"
#include "node/federation/fanout.h"
#include "node/metrics/metrics.h"
#include "node/service/service_env.h"
#include "node/storage/storage.h"

namespace fedshare::server {

// Everything borrowed must outlive `metrics`' last Render and every call
// the observers see. REQUIRES: called before the listeners start.
void InstallNodeMetrics(metrics::Metrics* metrics, const v1::NodeConfig* config,
                        audit::AuditLog* audit, federation::FanOut* fanout,
                        service::ServiceEnv* env, const storage::Storage* storage, Clock* clock);

// The figures `fedshare status` shows (AdminService.Status), read from the
// families InstallNodeMetrics defined; runs the collectors first so the
// gauges are current.
v1::StatusMetrics SummarizeNodeMetrics(metrics::Metrics* metrics);

}  // namespace fedshare::server

#endif  // FEDSHARE_NODE_SERVER_NODE_METRICS_H_
