// The calibration anchor's assumptions: DeepSeek's published H800 inference system
// (docs/deployment-sim.md, "Calibration"). Only the serving-level terms below were fitted to it;
// the hardware figures come from the cluster profile.
#include <porta/plan.hpp>

namespace porta::plan {

Assumptions deepseek_h800_anchor() {
  Assumptions a;
  // Fitted: one factor for both phases (decode alone would give 0.69, prefill 0.67).
  a.occupancy = 0.68;
  return a;
}

}  // namespace porta::plan
