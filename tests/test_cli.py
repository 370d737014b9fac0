"""The command line, in-process, as a subprocess, without a terminal, and in a terminal.

The terminal session runs ``python -m mimo_conv explain --step`` on a pseudo-terminal
(the standard library's ``pty``), presses Enter and ``q`` like a student would, and checks
that colours appear there and nowhere else.
"""

from __future__ import annotations

import io
import os
import re
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mimo_conv as mc
from mimo_conv._classroom.cli import main

pty = pytest.importorskip("pty")  # POSIX only

README = Path(__file__).resolve().parent.parent / "README.md"
CLASSROOM = README.parent / "docs" / "classroom.md"

ESCAPE = "\x1b["
PROMPT = "-- Enter: next element, q: quit --"
BOOK_FIRST_PRODUCTS = "0*0 + 1*1 + 3*2 + 4*3 = 19"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mimo_conv`` as a new process, stdin empty, output piped."""
    return subprocess.run(
        [sys.executable, "-m", "mimo_conv", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=60,
        check=False,
    )


# --------------------------------------------------------------------------------------
# In-process


def test_no_subcommand_runs_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "All three match the book." in capsys.readouterr().out


@pytest.mark.parametrize("command", ["demo", "explain", "figure", "cost", "exercises"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m mimo_conv {command}")


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "explain", "figure", "cost", "exercises"):
        assert re.search(rf"^\s+{command}\s", out, re.MULTILINE), command


def test_explain_walks_through_the_book_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert BOOK_FIRST_PRODUCTS in out
    assert "1*1 + 2*2 + 4*3 + 5*4 = 37" in out  # channel 1 of the first element
    assert "sum over input channels: 19 + 37 = 56" in out
    # The window of the first element, in brackets, without colour (capsys is no TTY),
    # with its kernel K[0, 0] = [[0, 1], [2, 3]] beside it.
    window = re.search(
        r"input channel 0, window: +kernel K\[0, 0\]:\n"
        r" +\[0\]\[1\] 2 +0 1\n +\[3\]\[4\] 5 +2 3\n +6  7  8\n",
        out,
    )
    assert window is not None
    # Every element of every output channel, in order, then the stacking.
    elements = re.findall(r"^Y\[(\d), (\d), (\d)\]:", out, re.MULTILINE)
    assert elements == [
        (str(o), str(i), str(j)) for o in range(3) for i in range(2) for j in range(2)
    ]
    totals = [int(v) for v in re.findall(r"^  Y\[\d, \d, \d\] = (-?\d+)$", out, re.MULTILINE)]
    assert totals == [56, 72, 104, 120, 76, 100, 148, 172, 96, 128, 192, 224]
    assert "stacking the 3 output channel(s) gives Y of shape (3, 2, 2)" in out
    assert ESCAPE not in out


def test_explain_element_shows_only_that_element(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--element", "1,0,1"]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^Y\[(\d), (\d), (\d)\]:", out, re.MULTILINE) == [("1", "0", "1")]
    # K[1] = K + 1: channel 0's kernel is [[1, 2], [3, 4]], its window [[1, 2], [4, 5]].
    assert "1*1 + 2*2 + 4*3 + 5*4 = 37" in out
    assert "sum over input channels: 37 + 63 = 100" in out
    assert "  Y[1, 0, 1] = 100\n" in out
    assert "stacking" not in out


def test_explain_channel_shows_only_that_output_channel(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explain", "--channel", "2"]) == 0
    out = capsys.readouterr().out
    elements = re.findall(r"^Y\[(\d), (\d), (\d)\]:", out, re.MULTILINE)
    assert elements == [("2", str(i), str(j)) for i in range(2) for j in range(2)]
    totals = [int(v) for v in re.findall(r"^  Y\[\d, \d, \d\] = (-?\d+)$", out, re.MULTILINE)]
    assert totals == [96, 128, 192, 224]  # the book's third output channel
    assert "output channel 2 (kernel K[2]) is done" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "--element", "3,0,0"], "inside the output of shape (3, 2, 2), got (3, 0, 0)"),
        (["explain", "--channel", "3"], "channel must be an output channel in 0..2, got 3"),
    ],
    ids=["element", "channel"],
)
def test_explain_focus_outside_the_output_exits_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_explain_marks_padding_without_colour(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["explain", "--x", "[[1, 2], [3, 4]]", "--weight", "[[1, -1]]", "--padding", "1"]
    assert main([*args, "--element", "0,1,2"]) == 0
    out = capsys.readouterr().out
    assert "each padded zero written '.'" in out
    # Row 1 of the padded input: a padded zero, 1, then the window over 2 and a padded zero.
    assert "     .  1 [2][.]\n" in out
    assert "2*1 + 0*(-1) = 2" in out  # the products still read the padded zero as 0
    assert ESCAPE not in out


def test_version_names_the_program_and_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"python -m mimo_conv {mc.__version__}\n"


def test_the_program_calls_itself_by_the_name_it_was_run_as(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/mimo-conv", "cost", "--help"])
    with pytest.raises(SystemExit):
        main(["cost", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: mimo-conv cost")
    assert "  mimo-conv cost --input 3x224x224" in out  # the examples too
    assert "python -m mimo_conv" not in out


def test_the_module_calls_itself_python_m_mimo_conv() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"python -m mimo_conv {mc.__version__}\n"


def test_explain_takes_nested_lists(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "explain",
            "--x",
            "[[1, 2], [3, 4]]",
            "--weight",
            "[[1, -1]]",
            "--padding",
            "1",
            "--bias",
            "[10]",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "0*1 + 0*(-1) = 0" in out
    assert "sum over input channels + bias: 0 + 10 = 10" in out
    expected = mc.conv([[[1, 2], [3, 4]]], [[[[1, -1]]]], [10], padding=1)
    assert np.array2string(expected, separator=", ") in out


def test_explain_takes_npy_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-9, 9, (2, 4, 4))
    weight = rng.integers(-3, 3, (2, 2, 3, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", weight)
    code = main(
        [
            "explain",
            "--x",
            str(tmp_path / "x.npy"),
            "--weight",
            str(tmp_path / "w.npy"),
            "--stride",
            "1",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    expected = mc.conv(x, weight)
    totals = [int(v) for v in re.findall(r"^  Y\[\d, \d, \d\] = (-?\d+)$", out, re.MULTILINE)]
    assert totals == expected.ravel().tolist()


def test_explain_colours_only_when_asked_or_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explain", "--color", "always"]) == 0
    assert "\x1b[1;33;44m0\x1b[0m" in capsys.readouterr().out
    assert main(["explain", "--color", "never"]) == 0
    assert ESCAPE not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "--x", "[[1, 2]]"], "give both --x and --weight"),
        (["explain", "--x", "[[1, 2]]", "--weight", "[[1, 2, 3]]"], "kernel must fit"),
        (["cost", "--input", "3x5x5", "--weight", "2x4x3x3"], "to have 4 channels"),
    ],
    ids=["half-given", "too-large", "channels"],
)
def test_bad_values_exit_2_with_the_library_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "--x", "[[1, 2]", "--weight", "[[1]]"], "expected a nested list"),
        (["explain", "--x", "missing.npy", "--weight", "[[1]]"], "cannot read"),
        (["cost", "--input", "3xfive", "--weight", "2x3x3x3"], "expected sizes like"),
    ],
    ids=["literal", "npy", "dims"],
)
def test_unparsable_arguments_are_argparse_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cost_prints_the_table_of_mc_cost(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "cost",
        "--input",
        "3x224x224",
        "--weight",
        "64x3x7x7",
        "--stride",
        "2",
        "--padding",
        "3",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    expected = mc.cost((3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)
    assert out.startswith(str(expected) + "\n")
    assert "output shape (64, 112, 112)" in out
    # Padded: a note says the counts include the padding, gradient cells too.
    assert "the gradient of every padded cell" in out


def test_cost_says_nothing_about_padding_without_padding(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["cost", "--input", "2x3x3", "--weight", "3x2x2x2"]) == 0
    assert capsys.readouterr().out == str(mc.cost((2, 3, 3), (3, 2, 2, 2))) + "\n"


def test_cost_options_reach_the_library(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "cost",
        "--input",
        "2x4x9x9",
        "--weight",
        "6x2x3x3",
        "--padding",
        "same",
        "--dilation",
        "2x1",
        "--groups",
        "2",
        "--bias",
        "--dtype",
        "float64",
        "--exclude-padding",
    ]
    assert main(args) == 0
    expected = mc.cost(
        (2, 4, 9, 9),
        (6, 2, 3, 3),
        padding="same",
        dilation=(2, 1),
        groups=2,
        bias=True,
        dtype=np.float64,
        exclude_padding=True,
    )
    assert capsys.readouterr().out == str(expected) + "\n"


def test_exercises_prints_all_six(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercises"]) == 0
    out = capsys.readouterr().out
    for number in range(1, 7):
        assert re.search(rf"^{number}\. ", out, re.MULTILINE), number
    assert "False" not in out.split("5. ")[0]  # exercises 1-4 report only passing checks


def test_exercises_state_their_inputs_before_the_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["exercises"]) == 0
    out = capsys.readouterr().out
    first = out.split("\n1. ")[1].split("(b)")[0]
    # Exercise 1(a) names both biases, then the composed bias: b1 passes through w2, whose
    # kernels (rows [1, 0, 1]) sum to 6 each, so 10 + 6 * (1 + 2 + 3) = 46.
    given, computed, answer = (
        first.index(f"{label}:") for label in ("Given", "Computed", "Answer")
    )
    assert given < computed < answer
    assert "b1 = [1, 2, 3]" in first[given:computed]
    assert "b2 = [10]" in first[given:computed]
    assert "bias [46]" in first[computed:answer]
    # Every part of every exercise has an answer, and no line is wider than a projector's.
    assert out.count("Answer:") == 3 + 4 + 1 + 1 + 1 + 1  # 1(a-c), 2(a-d), 3, 4, 5, 6
    assert max(len(line) for line in out.splitlines()) <= 86


def _written_commands(path: Path, section: tuple[str, str] | None = None) -> list[str]:
    """The ``python -m mimo_conv ...`` lines of a page (or of one marked section of it)."""
    text = path.read_text(encoding="utf-8")
    if section is not None:
        text = text.split(section[0])[1].split(section[1])[0]
    return [
        line.split("  #")[0].strip()
        for line in text.splitlines()
        if line.startswith("python -m mimo_conv ")
    ]


README_SECTION = ("<!-- classroom-section:start -->", "<!-- classroom-section:end -->")
CLASSROOM_COMMANDS = _written_commands(CLASSROOM)
README_COMMANDS = _written_commands(README, README_SECTION)


def test_the_classroom_pages_list_the_classroom_commands() -> None:
    subcommands = {shlex.split(line)[3] for line in CLASSROOM_COMMANDS}
    assert subcommands == {"explain", "figure", "cost", "exercises"}
    assert {shlex.split(line)[3] for line in README_COMMANDS} == {"explain", "figure", "exercises"}


@pytest.mark.parametrize("command", sorted(set(CLASSROOM_COMMANDS + README_COMMANDS)))
def test_written_classroom_commands_work_as_written(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "mimo_conv"]
    if words[3] == "figure":
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # figure writes its file here
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # --step reads end-of-input
    assert main(words[3:]) == 0
    assert capsys.readouterr().out


def test_the_classroom_guide_shows_explain_as_it_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = CLASSROOM.read_text(encoding="utf-8")
    marker = "`python -m mimo_conv explain --element 1,0,1` prints, after a short introduction:"
    shown = page.split(marker)[1].split("```text\n")[1].split("```")[0]
    assert main(["explain", "--element", "1,0,1"]) == 0
    out = capsys.readouterr().out
    assert shown in out
    assert out.endswith(shown + "\n")


# --------------------------------------------------------------------------------------
# As a subprocess, without a terminal


def test_module_runs_as_a_subprocess() -> None:
    result = run("cost", "--input", "2x3x3", "--weight", "3x2x2x2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == str(mc.cost((2, 3, 3), (3, 2, 2, 2))) + "\n"


def test_explain_without_a_terminal_is_plain_text() -> None:
    result = run("explain")
    assert result.returncode == 0, result.stderr
    assert BOOK_FIRST_PRODUCTS in result.stdout
    assert "[0][1] 2" in result.stdout
    assert ESCAPE not in result.stdout


def test_step_without_input_prints_everything() -> None:
    # stdin is empty: the first prompt reads end-of-file and the rest is printed.
    result = run("explain", "--step")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(PROMPT) == 1
    assert "stacking the 3 output channel(s)" in result.stdout


# --------------------------------------------------------------------------------------
# In a pseudo-terminal


class Terminal:
    """``python -m mimo_conv ...`` on a pseudo-terminal, read with a timeout."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mimo_conv", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
        )
        os.close(slave)
        self.seen = ""

    def read_until(self, marker: str, timeout: float = 30.0) -> str:
        """Read until ``marker`` appears (or the process ends); return what was new."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while marker not in self.seen[start:] and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                if self.process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # Linux: EIO once the other side is closed
                break
            if not chunk:
                break
            self.seen += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        return self.seen[start:]

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        self.read_until("\0", timeout=10)  # drain until the process closes its end
        code = self.process.wait(timeout=30)
        os.close(self.master)
        return code


def _environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    env.update(extra)
    return env


def test_step_session_in_a_terminal_waits_for_enter_and_quits_on_q() -> None:
    terminal = Terminal("explain", "--step", env=_environment())
    try:
        first = terminal.read_until(PROMPT)
        assert "X has 2 input channel(s)" in first
        assert BOOK_FIRST_PRODUCTS in first  # the first element comes before the prompt
        assert "Y[0, 0, 1]" not in first  # one element per Enter
        assert "\x1b[1;33;44m0\x1b[0m" in first  # the window is highlighted
        terminal.type("\n")
        second = terminal.read_until(PROMPT)
        assert "1*0 + 2*1 + 4*2 + 5*3 = 25" in second
        assert "Y[0, 1, 0]" not in second
        terminal.type("q\n")
    finally:
        code = terminal.close()
    assert code == 0
    assert "Y[0, 1, 0]" not in terminal.seen  # q stopped the walkthrough


def test_no_color_turns_colours_off_in_a_terminal() -> None:
    terminal = Terminal("explain", env=_environment(NO_COLOR="1"))
    try:
        out = terminal.read_until("stacking the 3 output channel(s)")
    finally:
        code = terminal.close()
    assert code == 0
    assert BOOK_FIRST_PRODUCTS in out
    assert ESCAPE not in terminal.seen
    assert "[0][1] 2" in terminal.seen  # the plain-text highlighting instead


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    # `python -m mimo_conv explain ... | head -1`: the pipe closes while explain still
    # writes. The walkthrough of a 40 x 40 input is far larger than a pipe's buffer, so the
    # writer is still running when the reader goes away.
    x_file, weight_file = tmp_path / "x.npy", tmp_path / "w.npy"
    np.save(x_file, np.arange(1600).reshape(1, 40, 40))
    np.save(weight_file, np.ones((1, 1, 3, 3), dtype=np.int64))
    command = [sys.executable, "-m", "mimo_conv", "explain", "--x", str(x_file)]
    command += ["--weight", str(weight_file)]
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        first_line = process.stdout.readline()
        process.stdout.close()
        errors = process.stderr.read()
        status = process.wait(timeout=60)
    assert first_line.startswith(b"X has 1 input channel")
    assert b"Traceback" not in errors, errors.decode()
    assert status == 1
