"""Multi-Agent MuJoCo bodies, batched (``mamujoco-*`` ids): see ``marlkit.envs.mujoco.mamujoco``.

MuJoCo and Gymnasium-Robotics are optional (``pip install 'marlkit[mujoco]'``) and imported only when an env is built.
"""
