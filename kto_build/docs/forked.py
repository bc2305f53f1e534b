"""Work for the second core while this process writes pages: ``forked(fn, *args)`` runs ``fn(*args)`` in a
forked child (it inherits the parent's imports and data, so it starts in milliseconds) and ``.result()`` gives
its return value. Where fork is missing, or the child fails or dies, ``.result()`` computes it here instead:
the answer is the same, only slower. The child is a daemon: it never outlives the command."""

from __future__ import annotations


def forked(fn, *args):
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        return Forked(fn, args)
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, args, send), daemon=True, name="kto-build-docs")
    proc.start()
    send.close()
    return Forked(fn, args, proc, recv)


def _child(fn, args, send) -> None:
    try:
        send.send((True, fn(*args)))
    except BaseException:  # the parent computes it itself
        send.send((False, None))
    finally:
        send.close()


class Forked:
    def __init__(self, fn, args, proc=None, recv=None):
        self.fn, self.args, self.proc, self.recv = fn, args, proc, recv
        self._done = False
        self._value = None
        self.computed_here = False  # no child, or it failed: result() computed the value in this process

    def result(self):
        if self._done:
            return self._value
        ok, value = False, None
        if self.proc is not None:
            try:
                ok, value = self.recv.recv()
            except (EOFError, OSError):
                ok = False
            finally:
                self.recv.close()
                self.proc.join()
        self.computed_here = not ok
        self._value = value if ok else self.fn(*self.args)
        self._done = True
        return self._value
