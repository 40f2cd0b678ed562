"""`drainpipe simulate`: realistic Logplex drain traffic, generated deterministically from a seed.

Pure core: `lines` (formatting), `traffic` (router requests), `dynos` (runtime metrics),
`events` (platform events), `generator` (the simulated clock), `framing` (drain bodies
and the `.drain` file format). Edges: `post` (HTTP), `progress` (stderr), `command`.
"""

from drainpipe.tools.simulate.framing import DrainBody, DrainRecord, Framer
from drainpipe.tools.simulate.generator import Generator, SimLine, SimulateError, Workload

__all__ = [
    "DrainBody",
    "DrainRecord",
    "Framer",
    "Generator",
    "SimLine",
    "SimulateError",
    "Workload",
]
