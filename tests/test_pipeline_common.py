import errno
import inspect
import logging
import os
from types import SimpleNamespace

import pandas as pd
import pytest

from trdpipe import common as pipeline_common
from trdpipe.common import (
    InputError,
    atomic_directory,
    atomic_output,
    deterministic_gzip,
    format_list,
    run_script,
    save_figure,
    table_output,
    write_table,
)


def test_atomic_output_renames_only_on_success(tmp_path):
    target = tmp_path / "sub" / "table.tsv"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []  # no temporary file left behind
    with atomic_output(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_a_killed_attempts_temporaries_are_removed_by_the_next(tmp_path):
    """SIGKILL skips the context manager's clean-up; the rerun of the job removes what is left."""
    (tmp_path / ".volcano.png.k1ll3d.tmp").write_bytes(b"half a png")
    (tmp_path / ".running_scores.k1ll3d.tmp").mkdir()
    (tmp_path / ".running_scores.k1ll3d.tmp" / "a.png").write_bytes(b"half")
    unrelated = [tmp_path / ".volcano.png.notes", tmp_path / ".other.png.k1ll3d.tmp"]
    for path in unrelated:
        path.write_text("keep")
    with atomic_output(tmp_path / "volcano.png") as tmp:
        tmp.write_bytes(b"png")
    with atomic_directory(tmp_path / "running_scores") as tmp:
        (tmp / "b.png").write_bytes(b"png")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".other.png.k1ll3d.tmp", ".volcano.png.notes", "running_scores", "volcano.png"]
    )
    assert [p.name for p in (tmp_path / "running_scores").iterdir()] == ["b.png"]


def test_atomic_directory_replaces_the_old_directory_only_on_success(tmp_path):
    target = tmp_path / "figures"
    with atomic_directory(target) as tmp:
        (tmp / "old.png").write_bytes(b"1")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "new.png").write_bytes(b"2")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures"]
    assert [p.name for p in target.iterdir()] == ["old.png"]


def test_outputs_get_ordinary_file_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.tsv")
    finally:
        os.umask(old)
    assert (tmp_path / "t.tsv").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "t.tsv").read_text() == "a\n1\n"


def test_format_list_truncates_after_limit():
    assert format_list(["a", "b"]) == "a, b"
    assert format_list(range(12), limit=3) == "0, 1, 2, ... (and 9 more)"


@pytest.mark.parametrize("layout", ["constrained", "tight"])
def test_laid_out_figure_keeps_its_canvas(tmp_path, layout):
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(4, 3), layout=layout)
    ax.set_ylabel("a long label " * 3)
    save_figure(fig, tmp_path / "f.png", dpi=100)
    assert Image.open(tmp_path / "f.png").size == (400, 300)


def test_figure_without_layout_is_cropped_to_its_content(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    fig = plt.figure(figsize=(4, 3))
    fig.text(0.5, 0.5, "x")
    save_figure(fig, tmp_path / "f.png", dpi=100)
    width, height = Image.open(tmp_path / "f.png").size
    assert width < 100 and height < 100


def test_figure_is_written_as_png_and_svg_reproducibly(tmp_path):
    import matplotlib.pyplot as plt

    def draw(path):
        fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
        ax.plot([0, 1], [1, 0], label="a line")
        ax.set_title("volcano")
        save_figure(fig, path)
        return fig.number

    drawn = draw(tmp_path / "a" / "volcano.png")
    draw(tmp_path / "b" / "volcano.png")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["volcano.png", "volcano.svg"]
    assert (tmp_path / "a" / "volcano.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "a" / "volcano.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "volcano" in svg  # the title as text
    assert svg == (tmp_path / "b" / "volcano.svg").read_text()
    assert not plt.fignum_exists(drawn)  # saved figures are closed (other tests may leave theirs open)


def test_gzipped_table_is_reproducible(tmp_path):
    import gzip

    table = pd.DataFrame({"gene_id": ["g1", "g2"], "s1": [1.5, 2.25]})
    write_table(table, tmp_path / "a.tsv.gz", float_format="%.6g")
    write_table(table, tmp_path / "b.tsv.gz", float_format="%.6g")
    assert gzip.decompress((tmp_path / "a.tsv.gz").read_bytes()) == b"gene_id\ts1\ng1\t1.5\ng2\t2.25\n"
    assert (tmp_path / "a.tsv.gz").read_bytes() == (tmp_path / "b.tsv.gz").read_bytes()


def test_a_gzipped_table_written_in_pieces_has_the_bytes_of_its_whole_text(tmp_path):
    """table_output streams the gzip: the pieces and the flushes between them (pandas' to_csv
    flushes) must not show in the bytes."""
    lines = [f"g{i}\t{i * 0.37:.6g}\n" for i in range(20000)]
    with table_output(tmp_path / "t.tsv.gz") as handle:
        for line in lines:
            handle.write(line)
            handle.flush()
    assert (tmp_path / "t.tsv.gz").read_bytes() == deterministic_gzip("".join(lines))


def run_failing(tmp_path, main):
    """run_script on a stand-in for Snakemake's object; returns the rule log's lines (no timestamps)."""
    log = tmp_path / "logs" / "qc.log"
    smk = SimpleNamespace(log=[str(log)], rule="qc", output=[str(tmp_path / "results" / "qc" / "m.tsv")])
    with pytest.raises(SystemExit) as stop:
        run_script(main, smk)
    logging.getLogger().handlers.clear()  # setup_logging's handlers hold the file open
    assert stop.value.code == 1
    return [line.split(" ", 2)[2] if line[:2] == "20" else line for line in log.read_text().splitlines()]


def test_an_unexpected_error_is_logged_with_a_summary_then_the_traceback(tmp_path):
    lines = run_failing(tmp_path, lambda smk: format_list(None))
    source, start = inspect.getsourcelines(pipeline_common.format_list)
    line = start + next(i for i, text in enumerate(source) if "for i in items" in text)
    assert lines[0] == (
        "ERROR rule qc failed: TypeError: 'NoneType' object is not iterable "
        f"(workflow/lib/trdpipe/common.py, line {line}, in format_list)"
    )
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "TypeError: 'NoneType' object is not iterable"


def test_a_full_disk_is_one_line(tmp_path):
    def main(smk):
        raise OSError(errno.ENOSPC, "No space left on device", "results/qc/m.tsv")

    assert run_failing(tmp_path, main) == [
        "ERROR rule qc failed: no space left on the device while writing results/qc/m.tsv; free some "
        "space and run the workflow again (finished outputs are kept)."
    ]


def test_an_input_error_is_its_message_alone(tmp_path):
    def main(smk):
        raise InputError("s.tsv: column 'age' has no value for sample P2.")

    assert run_failing(tmp_path, main) == ["ERROR s.tsv: column 'age' has no value for sample P2."]


def test_a_full_disk_reported_by_a_library_is_one_line_too(tmp_path):
    def main(smk):  # as h5py words it, with no errno and no file name
        raise OSError(
            "Can't write data (file write failed: errno = 28, error message = 'No space left on device')"
        )

    assert run_failing(tmp_path, main) == [
        f"ERROR rule qc failed: no space left on the device while writing {tmp_path / 'results' / 'qc'}; free "
        "some space and run the workflow again (finished outputs are kept)."
    ]
