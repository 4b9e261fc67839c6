"""Helpers shared by every rule script: input errors, logging, atomic outputs.

Scripts are run by Snakemake's ``script:`` directive; ``workflow/rules/common.smk``
puts this folder on PYTHONPATH so they can import it.
"""

import contextlib
import errno
import glob
import gzip
import hashlib
import io
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

# workflow/: the pipeline's own code (the rule scripts and the engine in workflow/lib/), which a
# failure's one-line summary points into.
WORKFLOW_DIR = Path(__file__).resolve().parents[2]


class InputError(Exception):
    """Bad input detected before any model is fitted.

    The message must name the file, the place (sample, gene, column, line)
    and what was expected; it is shown to the user as is.
    """


def format_list(items, limit: int = 10) -> str:
    """'a, b, c' for short lists, 'a, b, ... (and 12 more)' for long ones."""
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f", ... (and {len(items) - limit} more)"
    return shown


def setup_logging(log_path: str | os.PathLike | None) -> logging.Logger:
    """Log to the rule's log file (and stderr), with timestamps."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    return logging.getLogger("trd")


@contextlib.contextmanager
def log_duration(stage: str) -> Iterator[None]:
    """Log how long the block took, as 'stage: 1.23 s' (a long step's log shows where time goes)."""
    start = time.perf_counter()
    yield
    logging.getLogger("trd").info("%s: %.2f s", stage, time.perf_counter() - start)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    A failed or interrupted step therefore never leaves a file that looks finished.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file private (0600); give it the permissions of an ordinary file.
        tmp_path.chmod(0o666 & ~_current_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Like ``atomic_output``, for a directory (of figures, say)."""
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temporaries(path: Path) -> None:
    """Create ``path``'s folder and delete the temporaries of ``path`` that a killed earlier
    attempt left there: a SIGKILL skips the clean-up of the context managers above, and
    Snakemake removes only the declared outputs of an incomplete job."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def gzip_writer(fileobj) -> gzip.GzipFile:
    """A gzip stream into fileobj with no timestamp and no file name in the header: the same text
    gives the same bytes (also when written in pieces)."""
    return gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, mtime=0, compresslevel=9)


def deterministic_gzip(text: str) -> bytes:
    """The text gzipped by gzip_writer."""
    buffer = io.BytesIO()
    with gzip_writer(buffer) as handle:
        handle.write(text.encode("utf-8"))
    return buffer.getvalue()


def read_sample_table(path, text: bool = False):
    """A tab-separated table whose first column holds sample IDs, indexed by them as text, with
    every other column as text too when `text`.

    IDs such as `001` or `1e5` must come back as written: pandas parses a column that index_col
    takes as numbers whatever dtype says (`001` becomes 1), so the IDs are read as an ordinary
    text column first. Every rule that reads back a table of samples reads it here."""
    import pandas as pd  # here: the helpers above serve scripts that need no pandas

    ids = pd.read_csv(path, sep="\t", nrows=0).columns[0]
    table = pd.read_csv(path, sep="\t", dtype=str if text else {ids: str})
    return table.set_index(ids).rename_axis(None if ids.startswith("Unnamed: ") else ids)


@contextlib.contextmanager
def table_output(path: str | os.PathLike) -> Iterator[io.TextIOWrapper]:
    """A text handle that writes ``path`` atomically; a path ending in .gz is gzipped
    reproducibly (gzip_writer) as the text comes, not from the whole text held in memory."""
    with atomic_output(path) as tmp, open(tmp, "wb") as raw, contextlib.ExitStack() as stack:
        binary = raw
        if str(path).endswith(".gz"):
            # the buffer stops the text's flushes: GzipFile.flush() ends a deflate block, so that
            # the bytes would depend on when the text was flushed
            binary = io.BufferedWriter(stack.enter_context(gzip_writer(raw)))
        with io.TextIOWrapper(binary, encoding="utf-8", newline="") as text:
            yield text


def write_table(df, path, **kwargs) -> None:
    """Write a tab-separated table atomically (no index unless asked); a path ending in .gz is
    gzipped reproducibly (table_output), so the same table gives the same bytes."""
    kwargs.setdefault("index", False)
    with table_output(path) as handle:
        df.to_csv(handle, sep="\t", **kwargs)


# Every figure is written twice: PNG for the HTML report, SVG (vector) for publications.
FIGURE_FORMATS = ("png", "svg")


def figure_paths(path) -> list[Path]:
    """The files save_figure writes for ``path``: ``path`` itself, then its SVG beside it."""
    path = Path(path)
    return [path] + [path.with_suffix(f".{fmt}") for fmt in FIGURE_FORMATS if f".{fmt}" != path.suffix]


def save_figure(fig, path, **kwargs) -> None:
    """Save a matplotlib figure atomically as ``path`` (PNG) and as SVG beside it, then close it.

    A figure made with layout="tight" or "constrained" already fits its canvas; cropping it
    to its bounding box as well (the default for the others) would lay it out twice.
    """
    import matplotlib.pyplot as plt
    from matplotlib.layout_engine import ConstrainedLayoutEngine, TightLayoutEngine

    laid_out = isinstance(fig.get_layout_engine(), (TightLayoutEngine, ConstrainedLayoutEngine))
    dpi = kwargs.pop("dpi", 110)
    for target in figure_paths(path):
        fmt = target.suffix.lstrip(".")
        # an SVG without its date and with fixed element ids: the same figure gives the same bytes
        reproducible = {"metadata": {"Date": None}} if fmt == "svg" else {}
        with atomic_output(target) as tmp, plt.rc_context({"svg.hashsalt": "trd"}):
            fig.savefig(
                tmp, format=fmt, dpi=dpi, bbox_inches=None if laid_out else "tight", **reproducible, **kwargs
            )
        if laid_out:
            # the first format's layout serves the second: laying it out again took 40% of the
            # time of a running-score plot's two files
            fig.set_layout_engine("none")
    plt.close(fig)


def run_script(main: Callable, smk) -> None:
    """Run a rule's ``main(snakemake)``; every failure goes to the rule's log, then exit 1.

    An InputError is its message alone; a full disk is one line; any other exception is a
    one-line summary (rule, exception, where in the pipeline's scripts) and then the traceback.
    """
    log = setup_logging(smk.log[0] if smk.log else None)
    try:
        main(smk)
    except InputError as err:
        log.error("%s", err)
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - anything else is logged, then the job fails
        if disk_full(err):
            log.error("%s", disk_full_message(smk, err))
        else:
            log.error(
                "%s\n%s",
                failure_summary(getattr(smk, "rule", "script"), err),
                "".join(traceback.format_exception(err)).rstrip(),
            )
        sys.exit(1)


def failure_summary(rule: str, err: BaseException) -> str:
    """'rule qc failed: KeyError: 'pvalue' (workflow/lib/trdpipe/qc/metrics.py, line 402, in log_findings)'.

    The place is the innermost frame under workflow/ (the pipeline's own code), else the innermost one.
    """
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(WORKFLOW_DIR)]
    where = (ours or frames)[-1] if frames else None
    text = str(err).strip().splitlines()
    summary = f"rule {rule} failed: {type(err).__name__}" + (f": {text[0]}" if text else "")
    if where is not None:
        summary += f" ({_shown_path(where.filename)}, line {where.lineno}, in {where.name})"
    return summary


def disk_full(err: BaseException | None) -> bool:
    """ENOSPC, also when a library (h5py, say) re-raises it with the reason in its message only."""
    while err is not None:
        if isinstance(err, OSError) and (err.errno == errno.ENOSPC or "No space left on device" in str(err)):
            return True
        err = err.__cause__ or err.__context__
    return False


def disk_full_message(smk, err: BaseException) -> str:
    """One line for ENOSPC, naming the file (or the first output's folder) being written."""
    outputs = list(getattr(smk, "output", []))
    target = getattr(err, "filename", None) or (
        os.path.dirname(str(outputs[0])) if outputs else "its outputs"
    )
    return (
        f"rule {getattr(smk, 'rule', 'script')} failed: no space left on the device while writing "
        f"{target}; free some space and run the workflow again (finished outputs are kept)."
    )


def _shown_path(filename: str) -> str:
    """The pipeline's files as workflow/<path>, other files as they are."""
    path = Path(filename).resolve()
    return f"workflow/{path.relative_to(WORKFLOW_DIR)}" if path.is_relative_to(WORKFLOW_DIR) else filename


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
