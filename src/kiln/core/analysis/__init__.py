"""Analysis: judges that decide whether a canary is worse than its baseline.

Pure code (numpy/scipy, no I/O). ``observations`` holds what a metric source
reports and the windows between readings; ``verdicts`` the answers
(``Pass``, ``Fail``, ``Inconclusive``, and ``Pending`` while undecided);
``threshold``, ``comparative`` and ``sequential`` the three judges;
``msprt`` the anytime-valid math; ``factory.judge_for`` maps a spec metric to
a judge. The math and its sources are in ``docs/analysis.md``.

May import: ``kiln.core.spec``, ``kiln.errors``, numpy, scipy.
"""

from kiln.core.analysis.comparative import ComparativeConfig, ComparativeJudge, ComparedMetric
from kiln.core.analysis.factory import judge_for
from kiln.core.analysis.observations import (
    Counters,
    Direction,
    Gauge,
    Histogram,
    MetricKind,
    Missing,
    Observation,
    Reading,
    Sample,
    window,
)
from kiln.core.analysis.sequential import SequentialConfig, SequentialJudge
from kiln.core.analysis.threshold import ThresholdConfig, ThresholdJudge
from kiln.core.analysis.verdicts import (
    Fail,
    Inconclusive,
    Judge,
    Pass,
    Pending,
    Status,
    Verdict,
    combine,
)

__all__ = [
    "ComparativeConfig",
    "ComparativeJudge",
    "ComparedMetric",
    "Counters",
    "Direction",
    "Fail",
    "Gauge",
    "Histogram",
    "Inconclusive",
    "Judge",
    "MetricKind",
    "Missing",
    "Observation",
    "Pass",
    "Pending",
    "Reading",
    "Sample",
    "SequentialConfig",
    "SequentialJudge",
    "Status",
    "ThresholdConfig",
    "ThresholdJudge",
    "Verdict",
    "combine",
    "judge_for",
    "window",
]
