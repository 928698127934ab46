// The default p-table for cell key perturbation, published with every
// agreement that uses it (docs/privacy-model.md). Format: policy/cell_key.h.
//
// Design: table size 256; at most ±2 for counts of 5 and more, each row
// unbiased (mean perturbation 0, variance 0.875 from 5 up); counts 1 to 4 are
// moved only to 0 or to 3 and above, still unbiased, so no 1 or 2 is ever
// released; 0 stays 0 (an empty cell has no people to key it).
#include "policy/cell_key.h"

namespace fedshare::policy {

absl::string_view DefaultPTableText() {
  return R"(fedshare-ptable 1
table_size 256
# count: perturbation=keys ...   (probability = keys / 256)
0: 0=256
1: -1=192 3=64
2: -2=96 1=128 2=32
3: -3=32 0=144 1=64 2=16
4: -1=64 0=128 1=64
5: -2=16 -1=48 0=128 1=48 2=16
)";
}

}  // namespace fedshare::policy
