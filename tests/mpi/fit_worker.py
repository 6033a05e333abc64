"""Run under ``mpiexec -n N``: data-parallel fits whose results tests/test_distributed.py
compares with single-process fits of the same global batches.

Usage: python fit_worker.py OUT_DIR [DEVICE [TRANSPORT]]. Rank 0 writes
OUT_DIR/result.npz (every rank's final parameters, the history, the checkpoints each
rank wrote, the transport used).
"""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))  # this checkout's xpnet

import xpnet  # noqa: E402
from xpnet import callbacks, distributed  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cases import CASES, run_case  # noqa: E402


def main(out: pathlib.Path, device: str, transport: str) -> None:
    world = distributed.init(device, transport=transport)
    results: dict[str, np.ndarray] = {}
    for name, case in CASES.items():
        ckpt = callbacks.ModelCheckpoint(out / f"{name}-{{epoch}}.npz", save_best_only=False)
        model, history = run_case(case, distributed=True, device=world.device.name, extra_callbacks=[ckpt])
        params = [xpnet.to_numpy(p.value) for p in model.parameters()]
        gathered = world.comm.gather((params, len(ckpt.saved)), root=0)
        if world.is_root:
            for rank, (rank_params, saved) in enumerate(gathered):
                for i, value in enumerate(rank_params):
                    results[f"{name}/rank{rank}/param{i}"] = value
                results[f"{name}/rank{rank}/saved"] = np.asarray(saved)
            for key, values in history.history.items():
                results[f"{name}/history/{key}"] = np.asarray(values)
    if world.is_root:
        np.savez(out / "result.npz", size=world.size, transport=world.transport, **results)


if __name__ == "__main__":
    args = sys.argv[1:] + ["cpu", "auto"][len(sys.argv) - 2 :]
    main(pathlib.Path(args[0]), args[1], args[2])
