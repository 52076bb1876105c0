"""Agent registries: algorithm name -> (config class, agent class).

A new skill-discovery or meta-RL algorithm is one file in this package plus one line here.
"""

from __future__ import annotations

from metra.agents.cic import CICAgent, CICConfig
from metra.agents.cocoa import CocoaAgent, CocoaConfig
from metra.agents.dads import DADSAgent, DADSConfig
from metra.agents.diayn import DIAYNAgent, DIAYNConfig
from metra.agents.lsd import LSDAgent, LSDConfig
from metra.agents.metra import (
    MetraAgent,
    MetraConfig,
    QuasimetricMetraAgent,
    QuasimetricMetraConfig,
)
from metra.agents.pearl import PearlAgent, PearlConfig
from metra.agents.sac import SACAgent, SACConfig

SKILL_AGENTS: dict[str, tuple[type, type]] = {
    "metra": (MetraConfig, MetraAgent),
    "qmetra": (QuasimetricMetraConfig, QuasimetricMetraAgent),
    "lsd": (LSDConfig, LSDAgent),
    "diayn": (DIAYNConfig, DIAYNAgent),
    "dads": (DADSConfig, DADSAgent),
    "cic": (CICConfig, CICAgent),
}

__all__ = ["META_AGENTS", "SKILL_AGENTS", "MetraAgent", "MetraConfig", "SACAgent", "SACConfig"]

META_AGENTS: dict[str, tuple[type, type]] = {
    "pearl": (PearlConfig, PearlAgent),
    "cocoa": (CocoaConfig, CocoaAgent),
}
