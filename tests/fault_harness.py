"""Run the training command with a SIGKILL planted at a chosen moment (fault-injection suite only).

    python tests/fault_harness.py WHERE:N -- <vsr-train arguments>

WHERE is `step` (inside optimizer step N, after its batch was read: the step is lost), `val` (inside
the N-th validation of this process, after scoring, before its checkpoints), or `save` (in the
middle of writing the N-th checkpoint of this process: half its bytes are on disk under the
temporary name). The process then kills itself with SIGKILL, which no handler sees, exactly as
`kill -9` from outside would, but at a reproducible point. Nothing here is part of the package.
"""
from __future__ import annotations

import io
import os
import signal
import sys


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def plant(where: str, n: int) -> None:
    if where == "step":
        from vsrvfi.trainers.engine import Trainer

        train_step = Trainer.train_step

        def killing_step(self, batch):
            if self.state.step + 1 == n:  # the step that would make state.step == n
                die()
            return train_step(self, batch)

        Trainer.train_step = killing_step
    elif where == "val":
        from vsrvfi.trainers import validation

        call = validation.Validator.__call__
        seen = [0]

        def killing_call(self, *args, **kwargs):
            result = call(self, *args, **kwargs)
            seen[0] += 1
            if seen[0] == n:
                die()
            return result

        validation.Validator.__call__ = killing_call
    elif where == "save":
        from vsrvfi.models import checkpoint

        save = checkpoint.torch.save
        seen = [0]

        def killing_save(obj, f, *args, **kwargs):
            seen[0] += 1
            if seen[0] != n:
                return save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            out = f if hasattr(f, "write") else open(f, "wb")
            out.write(data[: len(data) // 2])
            out.flush()
            os.fsync(out.fileno())
            die()

        checkpoint.torch = type("torch_with_killing_save", (), {"save": staticmethod(killing_save),
                                                                "load": staticmethod(checkpoint.torch.load)})
    else:
        raise SystemExit(f"unknown fault {where!r}")


def main() -> None:
    spec, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: fault_harness.py WHERE:N -- ARGS"
    where, n = spec.split(":")
    if where != "none":
        plant(where, int(n))
    from vsrvfi.trainers.train import cli

    raise SystemExit(cli(args))


if __name__ == "__main__":
    main()
