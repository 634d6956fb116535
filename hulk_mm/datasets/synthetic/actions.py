"""Action animation of SynthHuman: pose trajectories of the body model for the ``skeleton_action`` task.

An action is a function of normalised time ``t`` in [0, 1] (one value per frame) that returns joint-angle
offsets added to a person's start pose, plus optional root motion in the body-local frame (forward / left steps),
a heading change and a lift off the ground. Every action draws its own variation (speed = number of cycles,
amplitude, phase, side, rhythm) from the generator it is given; ``animate`` adds slow per-joint drift and a
time warp (uneven tempo), keeps the feet on the ground (and, for in-place actions, at the same spot) and returns
level-frame points of every frame.

Classes (``ACTION_CLASSES``): walk, wave (one arm), jump, squat, kick (one leg), clap, turn (on the spot), sit
(sit down, sometimes stand up again), punch (alternating jabs from a guard), raise_hands (both arms overhead).
``idle`` (standing with small sway) is not a class: it is the neutral motion of bystanders.
"""
from typing import NamedTuple

import numpy as np

from .body import POINT_INDEX, POSE_INDEX, POSE_LIMITS, POSE_NAMES, forward_kinematics, ground_clearance

ACTION_CLASSES = ('walk', 'wave', 'jump', 'squat', 'kick', 'clap', 'turn', 'sit', 'punch', 'raise_hands')

_I = POSE_INDEX
_SIDES = ('left', 'right')


class Motion(NamedTuple):
    """Output of an action function (T frames): ``pose`` (T, D) radian offsets from the start pose, ``step``
    (T, 2) root displacement in the body's initial (left, forward) directions (metres), ``turn`` (T,) heading
    change (radians), ``lift`` (T,) height of the feet above the ground (metres), and ``plant``: the sides
    ('left', 'right') whose feet stay where they are (their mid-point is held in place; empty when walking)."""

    pose: np.ndarray
    step: np.ndarray
    turn: np.ndarray
    lift: np.ndarray
    plant: tuple


def _motion(t, plant=('left', 'right')):
    """An all-zero motion for ``len(t)`` frames, to be filled by an action."""
    n = len(t)
    return Motion(np.zeros((n, len(POSE_NAMES))), np.zeros((n, 2)), np.zeros(n), np.zeros(n), plant)


def _deg(x):
    return np.deg2rad(x)


def _envelope(t, rise, fall):
    """Smooth 0 -> 1 -> 0 over the clip: up during the first ``rise``, down during the last ``fall``."""
    up = np.clip(t / rise, 0, 1)
    down = np.clip((1 - t) / fall, 0, 1)
    return (3 * up ** 2 - 2 * up ** 3) * (3 * down ** 2 - 2 * down ** 3)


def _smoothstep(t, t0, t1):
    u = np.clip((t - t0) / (t1 - t0), 0, 1)
    return 3 * u ** 2 - 2 * u ** 3


def _repetitions(t, rng, low, high):
    """Phase in [0, 1) within each of ``n`` repetitions and the repetition index, with a short rest at the
    start and the end of the clip."""
    n = int(rng.integers(low, high + 1))
    lead = rng.uniform(0.03, 0.15)
    tail = rng.uniform(0.03, 0.15)
    u = np.clip((t - lead) / (1 - lead - tail), 0, 1 - 1e-9) * n
    return u % 1.0, np.floor(u).astype(int), n


def idle(rng, t):
    """Standing with slow sway of the torso, head and arms."""
    m = _motion(t)
    for name, amp in (('torso_side', 3), ('torso_twist', 6), ('head_yaw', 20), ('head_pitch', 6),
                      ('left_shoulder_flex', 8), ('right_shoulder_flex', 8)):
        m.pose[:, _I[name]] = _deg(amp) * np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * t + rng.uniform(0, 2 * np.pi))
    return m


def walk(rng, t, shape):
    """Gait: legs swing in anti-phase, knees flex during the swing, arms swing against the legs; the root
    moves forward by about one step per half cycle."""
    m = _motion(t, plant=())
    cycles, hip_amp = rng.uniform(1.0, 2.6), _deg(rng.uniform(16, 30))
    knee_amp, arm_amp = _deg(rng.uniform(25, 55)), rng.uniform(0.5, 1.1)
    w = 2 * np.pi * cycles * t + rng.uniform(0, 2 * np.pi)
    for side, sign in zip(_SIDES, (1.0, -1.0)):
        phase = w if sign > 0 else w + np.pi
        m.pose[:, _I[f'{side}_hip_flex']] = hip_amp * np.sin(phase)
        m.pose[:, _I[f'{side}_knee']] = knee_amp * np.maximum(np.sin(phase + np.pi / 3), 0) + _deg(5)
        m.pose[:, _I[f'{side}_shoulder_flex']] = -arm_amp * hip_amp * np.sin(phase)
        m.pose[:, _I[f'{side}_elbow']] = _deg(rng.uniform(10, 30))
    m.pose[:, _I['torso_twist']] = 0.3 * hip_amp * np.sin(w)
    leg = shape['thigh'] + shape['shank']
    m.step[:, 1] = 2 * leg * np.sin(hip_amp) * cycles * t
    return m


def wave(rng, t, shape):
    """One arm (sometimes both) raised to the side and waved from the elbow."""
    m = _motion(t)
    env = _envelope(t, rng.uniform(0.1, 0.25), rng.uniform(0.1, 0.25))
    sides = _SIDES if rng.random() < 0.15 else (_SIDES[rng.integers(2)],)
    freq, phase = rng.uniform(2.5, 6.0), rng.uniform(0, 2 * np.pi)
    swing = _deg(rng.uniform(20, 40)) * np.sin(2 * np.pi * freq * t + phase) * env
    for side in sides:
        m.pose[:, _I[f'{side}_shoulder_abd']] = _deg(rng.uniform(110, 155)) * env
        m.pose[:, _I[f'{side}_shoulder_flex']] = _deg(rng.uniform(0, 35)) * env
        m.pose[:, _I[f'{side}_elbow']] = _deg(rng.uniform(30, 70)) * env + swing
        m.pose[:, _I[f'{side}_shoulder_twist']] = 0.5 * swing
    m.pose[:, _I['head_yaw']] = _deg(rng.uniform(-15, 15)) * env
    return m


def jump(rng, t, shape):
    """One to three vertical jumps: crouch, push off with an arm swing, flight, landing crouch."""
    m = _motion(t)
    u, _, _ = _repetitions(t, rng, 1, 3)
    height, depth = rng.uniform(0.12, 0.4), rng.uniform(0.6, 1.0)
    crouch = depth * (np.sin(np.pi * np.clip(u / 0.4, 0, 1)) ** 2 + np.sin(np.pi * np.clip((u - 0.75) / 0.25, 0, 1)))
    flight = np.clip((u - 0.4) / 0.35, 0, 1)
    m.lift[:] = height * np.sin(np.pi * flight) * ((u > 0.4) & (u < 0.75))
    arms = np.sin(np.pi * np.clip((u - 0.25) / 0.5, 0, 1))
    for side in _SIDES:
        m.pose[:, _I[f'{side}_hip_flex']] = _deg(55) * crouch
        m.pose[:, _I[f'{side}_knee']] = _deg(75) * crouch
        m.pose[:, _I[f'{side}_shoulder_flex']] = _deg(rng.uniform(90, 160)) * arms - _deg(30) * crouch
        m.pose[:, _I[f'{side}_elbow']] = _deg(15) * arms
    m.pose[:, _I['torso_lean']] = _deg(20) * crouch
    return m


def squat(rng, t, shape):
    """One to three squats: hips and knees bend, the torso leans forward, arms reach forward for balance."""
    m = _motion(t)
    u, _, _ = _repetitions(t, rng, 1, 3)
    depth = rng.uniform(0.55, 1.0) * (1 - np.cos(2 * np.pi * u)) / 2
    arms = _deg(rng.uniform(40, 90)) if rng.random() < 0.7 else 0.0
    for side in _SIDES:
        m.pose[:, _I[f'{side}_hip_flex']] = _deg(95) * depth
        m.pose[:, _I[f'{side}_knee']] = _deg(120) * depth
        m.pose[:, _I[f'{side}_hip_abd']] = _deg(10) * depth
        m.pose[:, _I[f'{side}_shoulder_flex']] = arms * depth
    m.pose[:, _I['torso_lean']] = _deg(28) * depth
    return m


def kick(rng, t, shape):
    """One or two front kicks with one leg: chamber (knee up, bent), extend, re-chamber, put down."""
    u, _, _ = _repetitions(t, rng, 1, 2)
    side = _SIDES[rng.integers(2)]
    other = _SIDES[1 - _SIDES.index(side)]
    m = _motion(t, plant=(other,))
    m.pose[:, _I[f'{side}_hip_flex']] = _deg(rng.uniform(55, 95)) * np.sin(np.pi * u) ** 2
    m.pose[:, _I[f'{side}_knee']] = _deg(rng.uniform(60, 100)) * np.sin(2 * np.pi * u) ** 2
    m.pose[:, _I[f'{other}_knee']] = _deg(10) * np.sin(np.pi * u) ** 2
    m.pose[:, _I['torso_lean']] = -_deg(8) * np.sin(np.pi * u) ** 2
    for s in _SIDES:
        m.pose[:, _I[f'{s}_shoulder_abd']] = _deg(rng.uniform(10, 40)) * np.sin(np.pi * u) ** 2
    return m


def clap(rng, t, shape):
    """Arms held forward with bent elbows; the forearms swing in and out so the hands meet repeatedly."""
    m = _motion(t)
    env = _envelope(t, rng.uniform(0.1, 0.2), rng.uniform(0.1, 0.2))
    freq, phase = rng.uniform(2.5, 6.0), rng.uniform(0, 2 * np.pi)
    closing = 0.5 * (1 + np.sin(2 * np.pi * freq * t + phase))
    for side in _SIDES:
        m.pose[:, _I[f'{side}_shoulder_flex']] = _deg(rng.uniform(45, 80)) * env
        m.pose[:, _I[f'{side}_elbow']] = _deg(rng.uniform(60, 95)) * env
        m.pose[:, _I[f'{side}_shoulder_twist']] = -_deg(55) * closing * env
        m.pose[:, _I[f'{side}_shoulder_abd']] = _deg(10) * (1 - closing) * env
    return m


def turn(rng, t, shape):
    """Turning on the spot by 90-270 degrees with small stepping movements."""
    m = _motion(t)
    t0 = rng.uniform(0.0, 0.3)
    t1 = min(t0 + rng.uniform(0.45, 0.8), 1.0)
    m.turn[:] = rng.choice((-1.0, 1.0)) * _deg(rng.uniform(90, 270)) * _smoothstep(t, t0, t1)
    moving = np.sin(np.pi * np.clip((t - t0) / (t1 - t0), 0, 1))
    w = 2 * np.pi * rng.uniform(2, 4) * t
    for side, shift in zip(_SIDES, (0.0, np.pi)):
        m.pose[:, _I[f'{side}_hip_flex']] = _deg(15) * np.maximum(np.sin(w + shift), 0) * moving
        m.pose[:, _I[f'{side}_knee']] = _deg(25) * np.maximum(np.sin(w + shift), 0) * moving
    # The head leads into the turn: proportional to the turning rate (radians per clip), up to ~45 degrees.
    m.pose[:, _I['head_yaw']] = 0.05 * np.gradient(m.turn) * (len(t) - 1)
    return m


def sit(rng, t, shape):
    """Sitting down on an invisible chair (and, half of the time, standing up again)."""
    m = _motion(t)
    t0 = rng.uniform(0.05, 0.3)
    down = _smoothstep(t, t0, t0 + rng.uniform(0.2, 0.35))
    if rng.random() < 0.5:
        t2 = rng.uniform(0.65, 0.8)
        down = down * (1 - _smoothstep(t, t2, min(t2 + rng.uniform(0.15, 0.3), 1.0)))
    for side in _SIDES:
        m.pose[:, _I[f'{side}_hip_flex']] = _deg(rng.uniform(80, 95)) * down
        m.pose[:, _I[f'{side}_knee']] = _deg(rng.uniform(80, 100)) * down
        m.pose[:, _I[f'{side}_shoulder_flex']] = _deg(rng.uniform(15, 40)) * down
        m.pose[:, _I[f'{side}_elbow']] = _deg(rng.uniform(20, 50)) * down
    m.pose[:, _I['torso_lean']] = _deg(rng.uniform(5, 20)) * down
    return m


def punch(rng, t, shape):
    """Guard stance (fists up) and two to five fast jabs, alternating arms, with a torso twist."""
    m = _motion(t)
    env = _envelope(t, 0.1, 0.1)
    u, k, _ = _repetitions(t, rng, 2, 5)
    first = int(rng.integers(2))
    strike = np.sin(np.pi * np.clip(u / 0.6, 0, 1)) ** 2
    for i, side in enumerate(_SIDES):
        active = strike * ((k + first + i) % 2 == 0)
        m.pose[:, _I[f'{side}_shoulder_flex']] = _deg(45) * env + _deg(rng.uniform(30, 45)) * active
        m.pose[:, _I[f'{side}_elbow']] = _deg(115) * env * (1 - active)
        m.pose[:, _I[f'{side}_shoulder_abd']] = _deg(10) * env
    m.pose[:, _I['torso_twist']] = _deg(15) * strike * np.where((k + first) % 2 == 0, -1.0, 1.0)
    return m


def raise_hands(rng, t, shape):
    """Both arms raised overhead (forwards or sideways) and lowered, once or twice."""
    m = _motion(t)
    u, _, _ = _repetitions(t, rng, 1, 2)
    up = np.sin(np.pi * u) ** 2
    sideways = rng.random() < 0.5
    for side in _SIDES:
        m.pose[:, _I[f'{side}_shoulder_abd' if sideways else f'{side}_shoulder_flex']] = _deg(
            rng.uniform(140, 165)) * up
        m.pose[:, _I[f'{side}_elbow']] = _deg(rng.uniform(0, 20)) * up
    m.pose[:, _I['head_pitch']] = -_deg(15) * up
    return m


ACTIONS = dict(walk=walk, wave=wave, jump=jump, squat=squat, kick=kick, clap=clap, turn=turn, sit=sit, punch=punch,
               raise_hands=raise_hands)


def start_pose(rng):
    """A relaxed standing pose (len(POSE_NAMES),) with small per-person variation."""
    rest = _deg(np.array([3, 0, 0, 0, 3, 0, 5, 8, 0, 12, 5, 8, 0, 12, 3, 4, 5, 3, 4, 5], dtype=np.float64))
    spread = _deg(np.array([3, 2, 5, 15, 6, 3, 5, 4, 10, 8, 5, 4, 10, 8, 4, 2, 4, 4, 2, 4], dtype=np.float64))
    return rest + spread * rng.standard_normal(len(POSE_NAMES))


def _drift(rng, t, amplitude_deg=3.0):
    """(T, D) slow random drift of every angle: two random low-frequency sines per joint."""
    d = len(POSE_NAMES)
    freq = rng.uniform(0.3, 2.0, (2, d))
    phase = rng.uniform(0, 2 * np.pi, (2, d))
    amp = _deg(amplitude_deg) * rng.uniform(0.2, 1.0, (2, d))
    return (amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None, :, None] + phase[:, None])).sum(0)


def animate(rng, action, num_frames, shape, root_xz, yaw):
    """Animate one person: level-frame points of every frame.

    Args:
        rng: numpy Generator (all variation is drawn from it).
        action: a name of ``ACTION_CLASSES`` or ``'idle'``.
        num_frames: T.
        shape: body shape (``body.sample_shape``).
        root_xz: (2,) ground position (level ``X``, ``Z``) of the pelvis at the middle of the clip (metres).
        yaw: initial heading (radians).

    Returns:
        (T, len(POINT_NAMES), 3) points in the level frame with the ground at ``Y = 0`` (the caller shifts them
        to the camera's elevation).
    """
    if action != 'idle' and action not in ACTIONS:
        raise ValueError(f'unknown action {action!r}; valid: {", ".join(ACTION_CLASSES)}, idle')
    # Uneven tempo: a monotone time warp of the normalised clip time.
    t = np.linspace(0.0, 1.0, num_frames)
    t = np.clip(t + rng.uniform(-0.05, 0.05) * np.sin(2 * np.pi * t), 0, 1)
    motion = idle(rng, t) if action == 'idle' else ACTIONS[action](rng, t, shape)
    poses = np.clip(start_pose(rng)[None] + motion.pose + _drift(rng, t), POSE_LIMITS[:, 0], POSE_LIMITS[:, 1])
    headings = yaw + motion.turn
    left = np.array([np.cos(yaw), 0.0, np.sin(yaw)])       # the body's initial left and forward in the level
    forward = np.array([np.sin(yaw), 0.0, -np.cos(yaw)])   # frame (body._local_to_level)
    walk_offset = motion.step[:, :1] * left + motion.step[:, 1:] * forward
    walk_offset -= walk_offset[num_frames // 2]
    ankles = [POINT_INDEX[f'{side}_ankle'] for side in motion.plant]

    local = forward_kinematics(shape, poses, np.zeros(3), headings)  # all frames at once: (T, P, 3)
    root = np.stack([np.full(num_frames, root_xz[0]), -ground_clearance(shape, local) - motion.lift,
                     np.full(num_frames, root_xz[1])], axis=-1) + walk_offset
    points = local + root[:, None]
    if ankles:
        # In-place actions: keep the planted ankles (their mid-point) where they were in the first frame.
        feet = points[:, ankles].mean(axis=1)
        shift = feet[:1] - feet
        shift[:, 1] = 0.0
        points += shift[:, None]
    return points
