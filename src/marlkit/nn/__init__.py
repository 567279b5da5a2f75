"""Small torch modules shared by the algorithms."""

from marlkit.nn.agent_ids import append_agent_ids
from marlkit.nn.containers import ModuleMap
from marlkit.nn.mixers import QMixer, VDNMixer
from marlkit.nn.mlp import MLP, Linear
from marlkit.nn.normalize import RunningNorm
from marlkit.nn.rnn import GRUNet

__all__ = ["append_agent_ids", "GRUNet", "MLP", "Linear", "ModuleMap", "QMixer", "RunningNorm", "VDNMixer"]
