"""Robot pushing you can generate here: a pybullet KUKA iiwa arm pushing objects in a tray, written in the Robotic
Pushing dataset's schema (Finn et al. 2016) so that `datasets/robot_pushing.py` reads it unchanged.

`python -m datasets.pushing_sim --out DIR --split {train,val,test_seen,test_novel} --num N --seed S [--workers W]`

Scene and protocol:
- pybullet in DIRECT mode with its software renderer (no GPU, no display); `pybullet_data` provides the KUKA iiwa,
  the tray and 1000 random object meshes `random_urdfs/000`-`999`. Objects 000-899 are "seen" (train, val,
  test_seen); 900-999 are "novel" (test_novel only).
- Each sequence drops 1-3 random objects (random pose, yaw, mass) in the tray and lets them settle. The arm follows
  a scripted, randomised policy: a few waypoints near tray height that, with probability 0.8 each, pass through an
  object (so pushes happen often and sometimes miss), the commanded pose moving at most 4 cm per frame towards the
  next waypoint, with a random wrist yaw drift.
- 20 frames of 64 x 64 RGB from a fixed camera looking into the tray, 0.1 s apart (24 physics steps at 240 Hz).
- action[t] = the commanded end-effector pose (x, y, z, pitch, yaw) for the step from frame t to t + 1;
  state[t] = the measured end-effector pose at frame t (same 5 values) — the real data's `vec_pitch_yaw` layout. As
  in the real data the arm may not reach its command (objects and joint limits get in the way).
- Differences from the real data: 64 x 64 JPEG frames instead of 640 x 512 (the reader's centre crop and resize are
  then no-ops); a `push_val/` split is written (the real data has none); positions are in metres in the simulator's
  frame, angles in radians.
- Deterministic: sequence i of (split, seed) is a pure function of them (fresh simulation, numpy Generator seeded
  with (seed, split, i)); files are identical byte for byte whatever `--workers`.
- Per-split statistics (pushes, arm visibility, motion, speed) are written to `DIR/stats_SPLIT.json`.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing as mp
import os
import sys
import time

import numpy as np

SPLITS = {"train": 0, "val": 1, "test_seen": 2, "test_novel": 3}
SPLIT_DIRS = {"train": "push_train", "val": "push_val", "test_seen": "push_testseen", "test_novel": "push_testnovel"}
SEEN_OBJECTS = range(0, 900)
NOVEL_OBJECTS = range(900, 1000)
DEFAULT_NUM = {"train": 2000, "val": 100, "test_seen": 100, "test_novel": 100}  # ~1-2 minutes each on 2 cores
NUM_FRAMES = 20
IMAGE_SIZE = 64
STEPS_PER_FRAME = 24
TIME_STEP = 1.0 / 240.0
TRAY_CENTER = (0.55, 0.0)
TRAY_HALF = 0.24  # inner half-width used for object placement and waypoints (the tray is 0.6 m wide)
EE_LINK = 6
MAX_STEP = 0.04  # metres the command may move per frame
PUSH_HEIGHT = (0.03, 0.07)
MOVED_PIXELS = 3.0  # an object "moved" if its image position changed by more than this many pixels

_SIM = None


def object_ids(split: str) -> range:
    """The object meshes a split draws from: novel ids for test_novel, seen ids otherwise."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}. Received: split={split!r}")
    return NOVEL_OBJECTS if split == "test_novel" else SEEN_OBJECTS


class Simulator:
    """One pybullet DIRECT connection that renders sequences (one per process)."""

    def __init__(self):
        import pybullet as p
        import pybullet_data

        self.p = p
        self.client = p.connect(p.DIRECT)
        self.data = pybullet_data.getDataPath()
        cx, cy = TRAY_CENTER
        # Looking into the tray from beyond its far side, so the arm reaches in from the top of the picture.
        self.view = p.computeViewMatrix(
            [cx + 0.62, cy, 0.62], [cx - 0.05, cy, 0.0], [0, 0, 1], physicsClientId=self.client
        )
        self.proj = p.computeProjectionMatrixFOV(52, 1.0, 0.05, 3.0, physicsClientId=self.client)

    def close(self):
        self.p.disconnect(self.client)

    def _reset(self, rng, split):
        p, c = self.p, self.client
        p.resetSimulation(physicsClientId=c)
        p.setAdditionalSearchPath(self.data, physicsClientId=c)
        p.setGravity(0, 0, -9.81, physicsClientId=c)
        p.setTimeStep(TIME_STEP, physicsClientId=c)
        p.loadURDF("plane.urdf", [0, 0, -0.001], physicsClientId=c)
        p.loadURDF("tray/traybox.urdf", [*TRAY_CENTER, 0], physicsClientId=c)
        self.kuka = p.loadURDF("kuka_iiwa/model.urdf", [0, 0, 0], useFixedBase=True, physicsClientId=c)
        self.joints = list(range(p.getNumJoints(self.kuka, physicsClientId=c)))
        rest = [0.0, 0.5, 0.0, -1.6, 0.0, 1.1, 0.0]
        for j, q in zip(self.joints, rest, strict=True):
            p.resetJointState(self.kuka, j, q, physicsClientId=c)
        ids = object_ids(split)
        self.objects, self.object_ids = [], []
        for _ in range(int(rng.integers(1, 4))):
            k = int(ids[int(rng.integers(len(ids)))])
            self.object_ids.append(k)
            xy = np.asarray(TRAY_CENTER) + rng.uniform(-TRAY_HALF * 0.8, TRAY_HALF * 0.8, 2)
            orn = p.getQuaternionFromEuler([0, 0, float(rng.uniform(0, 2 * math.pi))])
            body = p.loadURDF(
                f"random_urdfs/{k:03d}/{k:03d}.urdf", [*xy, 0.08], orn, physicsClientId=c, globalScaling=1.2
            )
            p.changeDynamics(body, -1, mass=float(rng.uniform(0.05, 0.3)), lateralFriction=0.6, physicsClientId=c)
            self.objects.append(body)
        for _ in range(60):  # let the objects settle
            p.stepSimulation(physicsClientId=c)

    def _ee_pose(self):
        p, c = self.p, self.client
        pos, orn = p.getLinkState(self.kuka, EE_LINK, computeForwardKinematics=True, physicsClientId=c)[4:6]
        _, pitch, yaw = p.getEulerFromQuaternion(orn)
        return np.array([*pos, pitch, yaw], np.float32)

    def _command(self, pose):
        """Commands the gripper to `pose` (x, y, z, pitch, yaw); roll is fixed at pi (pointing down), so the
        measured pose's Euler pitch and yaw read back in the same convention."""
        p, c = self.p, self.client
        orn = p.getQuaternionFromEuler([math.pi, float(pose[3]), float(pose[4])])
        q = p.calculateInverseKinematics(
            self.kuka, EE_LINK, pose[:3].tolist(), orn, maxNumIterations=50, physicsClientId=c
        )
        p.setJointMotorControlArray(
            self.kuka, self.joints, p.POSITION_CONTROL, targetPositions=q, forces=[300] * 7, physicsClientId=c
        )
        return q

    def _render(self):
        p, c = self.p, self.client
        _, _, rgba, _, seg = p.getCameraImage(
            IMAGE_SIZE, IMAGE_SIZE, self.view, self.proj, renderer=p.ER_TINY_RENDERER, physicsClientId=c
        )
        rgba = np.asarray(rgba, np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 4)
        seg = np.asarray(seg).reshape(IMAGE_SIZE, IMAGE_SIZE)
        return rgba[..., :3].copy(), seg

    def _object_pixels(self):
        """Image-plane positions (pixels) of the objects' centres."""
        p, c = self.p, self.client
        view = np.asarray(self.view).reshape(4, 4).T
        proj = np.asarray(self.proj).reshape(4, 4).T
        out = []
        for body in self.objects:
            pos = np.array([*p.getBasePositionAndOrientation(body, physicsClientId=c)[0], 1.0])
            clip = proj @ view @ pos
            ndc = clip[:2] / clip[3]
            out.append((ndc + 1) * IMAGE_SIZE / 2)
        return np.array(out)

    def _waypoints(self, rng):
        p, c = self.p, self.client
        centres = [np.asarray(p.getBasePositionAndOrientation(b, physicsClientId=c)[0][:2]) for b in self.objects]
        points = []
        for _ in range(int(rng.integers(2, 5))):
            if rng.random() < 0.8:  # aim through an object, overshooting so that it gets pushed
                target = centres[int(rng.integers(len(centres)))] + rng.normal(0, 0.02, 2)
            else:
                target = np.asarray(TRAY_CENTER) + rng.uniform(-TRAY_HALF, TRAY_HALF, 2)
            points.append(np.clip(target, np.asarray(TRAY_CENTER) - TRAY_HALF, np.asarray(TRAY_CENTER) + TRAY_HALF))
        return points

    def sequence(self, split: str, seed: int, index: int, attempts: int = 3):
        """One sequence: (frames uint8 [20, 64, 64, 3], actions [20, 5], states [20, 5], stats dict).

        Every value it returns is finite. Once in our 2,200 sequences (train index 237, seed 0, in a worker that
        had simulated many sequences before) the physics went numerically wrong and poses came out NaN, which the
        reader rightly refuses; the same sequence simulated in a fresh connection was finite. So a non-finite
        result is simulated again in a fresh physics connection (same random stream: the sequence stays the pure
        function of (seed, split, index) that the module promises), up to `attempts` times, then it is an error.
        """
        for _ in range(attempts):
            frames, actions, states, stats = self._simulate(split, seed, index)
            finite = np.isfinite(actions).all() and np.isfinite(states).all()
            if finite and np.isfinite(stats["max_object_pixels_moved"]):
                return frames, actions, states, stats
            print(f"pushing_sim {split} sequence {index}: non-finite poses, simulating it again", file=sys.stderr)
            self.close()
            self.__init__()
        raise RuntimeError(
            f"pushing_sim {split} sequence {index} (seed {seed}): non-finite poses in {attempts} fresh simulations"
        )

    def _simulate(self, split: str, seed: int, index: int):
        rng = np.random.default_rng([seed, SPLITS[split], index])
        self._reset(rng, split)
        p, c = self.p, self.client
        start_xy = np.asarray(TRAY_CENTER) + rng.uniform(-TRAY_HALF, TRAY_HALF, 2)
        command = np.array(
            [*start_xy, 0.25, float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-0.5, 0.5))], np.float32
        )
        # Place the arm at its start pose directly (inverse kinematics, refined twice), then hold it there.
        for _ in range(2):
            q = self._command(command)
            for j, angle in zip(self.joints, q, strict=True):
                p.resetJointState(self.kuka, j, angle, physicsClientId=c)
        for _ in range(STEPS_PER_FRAME):
            p.stepSimulation(physicsClientId=c)
        waypoints = self._waypoints(rng)
        height = float(rng.uniform(*PUSH_HEIGHT))
        frames, actions, states, arm_pixels = [], [], [], []
        first_pixels = self._object_pixels()
        target = 0
        for _ in range(NUM_FRAMES):
            frame, seg = self._render()
            frames.append(frame)
            states.append(self._ee_pose())
            arm_pixels.append(int(np.sum((seg & ((1 << 24) - 1)) == self.kuka)))
            goal = np.array([*waypoints[target], height])
            delta = goal - command[:3]
            dist = float(np.linalg.norm(delta))
            if dist < MAX_STEP and target + 1 < len(waypoints):
                target += 1
            step = delta if dist <= MAX_STEP else delta * (MAX_STEP / dist)
            command = command.copy()
            command[:3] += step.astype(np.float32)
            command[4] += np.float32(rng.normal(0, 0.05))
            actions.append(command.copy())
            self._command(command)
            for _ in range(STEPS_PER_FRAME):
                p.stepSimulation(physicsClientId=c)
        moved = np.linalg.norm(self._object_pixels() - first_pixels, axis=1).max()
        frames = np.stack(frames)
        stats = {
            "objects": list(self.object_ids),
            "object_moved": bool(moved > MOVED_PIXELS),
            "max_object_pixels_moved": float(moved),
            "arm_visible_fraction": float(np.mean(np.array(arm_pixels) > 0)),
            "mean_abs_frame_change": float(np.abs(np.diff(frames.astype(np.int16), axis=0)).mean()),
        }
        return frames, np.stack(actions), np.stack(states), stats


def _init_worker():
    global _SIM
    _SIM = Simulator()


def _work(job):
    split, seed, index = job
    frames, actions, states, stats = _SIM.sequence(split, seed, index)
    return encode_sequence(frames, actions, states), stats


def encode_sequence(frames, actions, states, quality: int = 95) -> bytes:
    """A record in the Robotic Pushing schema (JPEG frames via Pillow: deterministic and TensorFlow-free)."""
    from PIL import Image

    from .example_proto import example_bytes
    from .robot_pushing import ACTION_KEY, IMAGE_KEY, STATE_KEY

    for name, values in (("actions", actions), ("states", states)):
        bad = np.argwhere(~np.isfinite(np.asarray(values, np.float64)))
        if len(bad):
            raise ValueError(f"{name}[{bad[0][0]}] is not finite: {list(values[bad[0][0]])} (the reader rejects it)")
    features = {}
    for i, frame in enumerate(frames):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=quality, subsampling=0)
        features[IMAGE_KEY.format(i)] = [buf.getvalue()]
        features[ACTION_KEY.format(i)] = [float(x) for x in actions[i]]
        features[STATE_KEY.format(i)] = [float(x) for x in states[i]]
    return example_bytes(features)


def generate(
    out: str, split: str, num: int, seed: int, workers: int = 1, num_shards: int | None = None, progress: bool = True
) -> dict:
    """Writes `num` sequences of `split` under `out/push_<split>/`; returns the split's statistics."""
    import tensorflow as tf
    from tqdm import tqdm

    object_ids(split)
    if num < 1:
        raise ValueError(f"--num must be >= 1. Received: {num}")
    num_shards = num_shards or max(1, min(8, num // 100))
    directory = os.path.join(out, SPLIT_DIRS[split])
    os.makedirs(directory, exist_ok=True)
    name = SPLIT_DIRS[split]
    paths = [os.path.join(directory, f"{name}.tfrecord-{i:05d}-of-{num_shards:05d}") for i in range(num_shards)]
    bounds = [num * i // num_shards for i in range(num_shards + 1)]
    jobs = [(split, seed, i) for i in range(num)]
    all_stats = []
    t0 = time.perf_counter()
    pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker) if workers > 1 else None
    if pool is None:
        _init_worker()
    results = pool.imap(_work, jobs, chunksize=2) if pool else map(_work, jobs)
    bar = tqdm(total=num, desc=f"pushing_sim {split}", unit="seq", disable=not progress, file=sys.stderr)
    try:
        for shard, path in enumerate(paths):
            tmp = path + ".incomplete"
            with tf.io.TFRecordWriter(tmp) as writer:
                for _ in range(bounds[shard], bounds[shard + 1]):
                    record, stats = next(results)
                    writer.write(record)
                    all_stats.append(stats)
                    bar.update(1)
            os.replace(tmp, path)
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
    seconds = time.perf_counter() - t0
    summary = {
        "split": split,
        "num_sequences": num,
        "seed": seed,
        "workers": workers,
        "fraction_with_object_moved": float(np.mean([s["object_moved"] for s in all_stats])),
        "mean_arm_visible_fraction": float(np.mean([s["arm_visible_fraction"] for s in all_stats])),
        "fraction_with_changing_frames": float(np.mean([s["mean_abs_frame_change"] > 0.5 for s in all_stats])),
        "mean_abs_frame_change": float(np.mean([s["mean_abs_frame_change"] for s in all_stats])),
        "frames_per_second": num * NUM_FRAMES / seconds,
        "frames_per_second_per_worker": num * NUM_FRAMES / seconds / workers,
        "files": [os.path.relpath(p, out) for p in paths],
    }
    with open(os.path.join(out, f"stats_{split}.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def contact_sheet(path: str, split: str = "train", seed: int = 0, num: int = 4, every: int = 2) -> None:
    """A PNG of `num` sequences (rows), every `every`-th frame, as shown in docs/data.md."""
    from vpn_tf.visualize import save_png, video_grid

    simulator = Simulator()
    rows = [simulator.sequence(split, seed, i)[0][::every] for i in range(num)]
    simulator.close()
    save_png(path, video_grid(rows), scale=2)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m datasets.pushing_sim", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        required=True,
        help="dataset directory (push_train/, push_val/, ...), or a .png path with --contact_sheet",
    )
    parser.add_argument("--split", required=True, choices=list(SPLITS))
    parser.add_argument("--contact_sheet", action="store_true", help="write a PNG of a few sequences to --out")
    parser.add_argument("--num", type=int, default=None, help=f"sequences (default: {DEFAULT_NUM})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--num_shards", type=int, default=None)
    args = parser.parse_args(argv)
    if args.contact_sheet:
        contact_sheet(args.out, args.split, args.seed, args.num or 4)
        return
    num = args.num or DEFAULT_NUM[args.split]
    summary = generate(args.out, args.split, num, args.seed, args.workers, args.num_shards)
    print(json.dumps({k: v for k, v in summary.items() if k != "files"}, indent=2))


if __name__ == "__main__":
    main()
