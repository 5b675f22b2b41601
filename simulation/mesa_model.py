"""The model as a Mesa model: ``Delivery`` with Mesa's clock and agents.

``PeerSupportModel`` is what the teaching app and anyone exploring the model by
hand use: ``step()`` advances one week under Mesa's clock, and the Mesa agents
(``simulation.agents``: peer workers, coordinators, ward staff and, on first use,
the participants) are views onto the arrays of ``simulation.population``. Its
results are those of ``Delivery``, whose ``run`` and ``run_batch`` do without
Mesa (and its imports) for speed.
"""

from __future__ import annotations

from collections.abc import Sequence

import mesa

from simulation.agents import PeerWorker, ServiceUser, Supervisor, WardStaff
from simulation.model import Delivery, Seed, replicate_streams
from simulation.params import Scenario


class PeerSupportModel(Delivery, mesa.Model):
    """Simulated trials of one scenario as a Mesa model (see ``Delivery``)."""

    def __init__(self, scenario: Scenario, seed: Seed | Sequence[Seed] = 0) -> None:
        # Mesa's own generator comes from a stream the model never draws from.
        mesa.Model.__init__(self, rng=replicate_streams(seed)[0].get("mesa"))
        Delivery.__init__(self, scenario, seed)
        self.peer_workers = PeerWorker.create_agents(
            self, self.workers.n, list(range(self.workers.n))
        )
        n_sup = len(self.coordinators.site)
        self.supervisors = Supervisor.create_agents(self, n_sup, list(range(n_sup)))
        self.ward_staff = WardStaff.create_agents(self, self.n_sites, list(range(self.n_sites)))
        self._service_users: mesa.agent.AgentSet | None = None

    def step(self) -> None:
        """One week of delivery (``advance_week`` with Mesa's clock)."""
        self.advance_week()

    @property
    def service_users(self) -> mesa.agent.AgentSet:
        """The participants as Mesa agents, registered on first use.

        Their state lives in ``self.users`` either way; registering 590 Mesa
        agents costs about a fifth of a whole replicate, which a run that never
        looks at them should not pay.
        """
        if self._service_users is None:
            n = self.users.n
            self._service_users = ServiceUser.create_agents(self, n, list(range(n)))
        return self._service_users
