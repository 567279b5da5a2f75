"""The continuous 2-D particle world (MPE) batched: core physics and one small module per scenario.

``spread-v0`` (cooperative navigation), ``tag-v0`` (predator-prey) and ``speaker-listener-v0`` reproduce mpe2's
``simple_spread_v3``, ``simple_tag_v3`` and ``simple_speaker_listener_v4`` transition for transition.
"""

from marlkit.envs.particles.core import Entity, ParticleEnvMixin, World, agent, landmark

__all__ = ["Entity", "ParticleEnvMixin", "World", "agent", "landmark"]
