"""The figures: files written and well formed, and the numbers in them are the computed ones.

No pixels are compared. The SVG keeps its text as text (``svg.fonttype = "none"``), so
the tests read every number drawn in a cell out of the file and compare it with the
book's numbers and with an independent computation (:func:`mimo_conv.corr2d` on an
explicitly padded channel).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import mimo_conv as mc
from mimo_conv._classroom.cli import main
from mimo_conv._classroom.textbook import BOOK_K3, BOOK_X

pytest.importorskip("matplotlib")

SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BOOK_Y = [[[56, 72], [104, 120]], [[76, 100], [148, 172]], [[96, 128], [192, 224]]]


def svg_texts(path: Path) -> list[str]:
    """Every text of an SVG, in drawing order (the file must parse as XML)."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def numbers(values: object) -> list[str]:
    """A grid's cells as the figure writes them, row by row."""
    return [str(v) for v in np.asarray(values).ravel().tolist()]


def contains_run(texts: list[str], run: list[str]) -> bool:
    """Whether ``run`` appears in ``texts`` as consecutive items (one grid's cells)."""
    return any(texts[i : i + len(run)] == run for i in range(len(texts) - len(run) + 1))


def test_default_png_is_written_and_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "book.png"
    figure = mc.draw_conv(file=path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000  # a drawing, not an empty canvas
    width, height = figure.get_size_inches()
    assert width > height > 0


def test_default_svg_holds_the_books_numbers(tmp_path: Path) -> None:
    path = tmp_path / "book.svg"
    mc.draw_conv(file=path)
    texts = svg_texts(path)
    # The two input channels and their kernels K[0, 0], K[0, 1], cell by cell.
    for c in range(2):
        assert contains_run(texts, numbers(BOOK_X[c]))
        assert contains_run(texts, numbers(BOOK_K3[0, c]))
        # Each channel's partial result is the single-channel correlation (section 6.2).
        assert contains_run(texts, numbers(mc.corr2d(BOOK_X[c], BOOK_K3[0, c])))
    assert contains_run(texts, numbers(BOOK_Y[0]))  # the sum: the book's first output
    assert "channel 0: 0·0 + 1·1 + 3·2 + 4·3 = 19" in texts
    assert "channel 1: 1·1 + 2·2 + 4·3 + 5·4 = 37" in texts
    assert "19 + 37 = 56" in texts
    assert texts[0].startswith("Y[0, 0, 0] = 56")


def test_element_picks_the_output_element(tmp_path: Path) -> None:
    path = tmp_path / "element.svg"
    mc.draw_conv(element=(1, 1, 1), file=path)
    texts = svg_texts(path)
    assert texts[0].startswith("Y[1, 1, 1] = 172")
    # K[1] = K + 1; the window of (1, 1) is the lower right 2 x 2 of each channel.
    assert "channel 0: 4·1 + 5·2 + 7·3 + 8·4 = 67" in texts
    assert "channel 1: 5·2 + 6·3 + 8·4 + 9·5 = 105" in texts
    assert "67 + 105 = 172" in texts
    assert contains_run(texts, numbers(BOOK_Y[1]))


def test_padding_is_hatched_and_its_zeros_are_drawn(tmp_path: Path) -> None:
    plain, padded = tmp_path / "plain.svg", tmp_path / "padded.svg"
    mc.draw_conv(file=plain)
    mc.draw_conv(padding=1, stride=2, element=(0, 1, 1), file=padded)
    assert "<pattern" not in plain.read_text(encoding="utf-8")
    assert "<pattern" in padded.read_text(encoding="utf-8")  # the hatching
    texts = svg_texts(padded)
    for c in range(2):
        assert contains_run(texts, numbers(np.pad(BOOK_X[c], 1)))
        expected = mc.corr2d(np.pad(BOOK_X[c], 1), BOOK_K3[0, c])[::2, ::2]
        assert contains_run(texts, numbers(expected))
    assert "stride (2, 2), padding ((1, 1), (1, 1)), dilation (1, 1)" in texts
    assert any("hatched grey: padding" in text for text in texts)
    assert any("stride (2, 2)" in text and "triangles" in text for text in texts)


def test_dilation_frames_the_taps_inside_a_dashed_extent(tmp_path: Path) -> None:
    path = tmp_path / "dilated.svg"
    x = np.arange(36).reshape(1, 6, 6)
    mc.draw_conv(x, np.ones((1, 1, 2, 2), int), dilation=2, element=(0, 1, 2), file=path)
    texts = svg_texts(path)
    # Taps at rows 1 and 3, columns 2 and 4 of x: 8, 10, 20, 22.
    assert "channel 0: 8·1 + 10·1 + 20·1 + 22·1 = 60" in texts
    assert "stroke-dasharray" in path.read_text(encoding="utf-8")
    assert any("dashed: the window's extent" in text for text in texts)


def test_outputs_view_has_one_row_per_output_channel(tmp_path: Path) -> None:
    path = tmp_path / "outputs.svg"
    mc.draw_conv(view="outputs", element=(2, 1, 0), file=path)
    texts = svg_texts(path)
    for o in range(3):
        assert f"K[{o}]" in texts
        assert contains_run(texts, numbers(BOOK_Y[o]))
        assert f"Y[{o}, 1, 0] = {BOOK_Y[o][1][0]}" in texts
        for c in range(2):
            assert contains_run(texts, numbers(BOOK_K3[o, c]))


def test_1x1_view_is_a_matrix_product(tmp_path: Path) -> None:
    path = tmp_path / "1x1.svg"
    x = np.arange(12).reshape(3, 2, 2)
    w = np.array([[1, 2, -1], [0, 1, 3]]).reshape(2, 3, 1, 1)
    mc.draw_conv(x, w, view="1x1", element=(1, 0, 1), file=path)
    texts = svg_texts(path)
    assert contains_run(texts, numbers(w.reshape(2, 3)))  # W
    # The pixel (0, 1) across the channels is x[:, 0, 1] = (1, 5, 9); W's row 1 gives
    # 0*1 + 1*5 + 3*9 = 32 and row 0 gives 1 + 10 - 9 = 2.
    assert contains_run(texts, ["1", "5", "9"])
    assert contains_run(texts, ["2", "32"])
    assert any(text.startswith("Y[1, 0, 1] = 0·1 + 1·5 + 3·9 = 32") for text in texts)
    assert any(text.endswith("equals conv(X, K) at every pixel: True") for text in texts)


def test_1x1_view_rejects_a_larger_kernel() -> None:
    with pytest.raises(ValueError, match=r"view='1x1' draws a 1 x 1 kernel"):
        mc.draw_conv(view="1x1", X=BOOK_X, K=BOOK_K3)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"view": "sideways"}, ValueError, "view must be one of"),
        ({"element": (3, 0, 0)}, ValueError, r"inside the output of shape \(3, 2, 2\)"),
        ({"element": (0, 0)}, ValueError, "got \\(0, 0\\)"),
        ({"element": "abc"}, TypeError, "element must be three ints"),
        ({"X": BOOK_X}, ValueError, "give both X and K"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        mc.draw_conv(**kwargs)  # type: ignore[arg-type]


def test_inputs_are_not_modified() -> None:
    x, w = BOOK_X.copy(), BOOK_K3.copy()
    mc.draw_conv(x, w, [1, 2, 3], padding=1)
    assert np.array_equal(x, BOOK_X)
    assert np.array_equal(w, BOOK_K3)


def test_bias_is_drawn_in_the_sum(tmp_path: Path) -> None:
    path = tmp_path / "bias.svg"
    mc.draw_conv(bias=[10, 20, 30], element=(2, 0, 0), file=path)
    texts = svg_texts(path)
    # K[2] = K + 2: channel sums 2*0+3*1+4*3+5*4 = 35 and 3*1+4*2+5*4+6*5 = 61; + 30.
    assert "35 + 61 + 30 (bias) = 126" in texts


def test_animation_is_a_gif_with_one_frame_per_output_element(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    path = mc.animate_conv(tmp_path / "steps.gif")
    assert path.read_bytes()[:6] == b"GIF89a"
    with image.open(path) as gif:
        assert gif.n_frames == 12  # Y has 3 x 2 x 2 elements


def test_animation_rejects_a_bad_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="frames_per_second must be at least 1, got 0"):
        mc.animate_conv(tmp_path / "x.gif", frames_per_second=0)
    assert not (tmp_path / "x.gif").exists()


def test_without_matplotlib_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "mimo_conv\[plot\]"'):
        mc.draw_conv()


# --------------------------------------------------------------------------------------
# The command line


def test_figure_command_writes_png_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["figure"]) == 0
    assert capsys.readouterr().out == "wrote conv_figure.png\n"
    assert (tmp_path / "conv_figure.png").read_bytes().startswith(PNG_SIGNATURE)


def test_figure_command_options_reach_the_drawing(tmp_path: Path) -> None:
    path = tmp_path / "f.svg"
    args = ["figure", "-o", str(path), "--element", "0,1,1", "--padding", "1"]
    assert main([*args, "--x", "[[1, 2], [3, 4]]", "--weight", "[[1, -1]]"]) == 0
    texts = svg_texts(path)
    assert contains_run(texts, numbers(np.pad([[1, 2], [3, 4]], 1)))
    assert texts[0].startswith("Y[0, 1, 1] = -1")  # 1*1 + 2*(-1)


def test_figure_command_writes_an_animation(tmp_path: Path) -> None:
    path = tmp_path / "a.gif"
    assert main(["figure", "-o", str(path), "--x", "[[1, 2, 3]]", "--weight", "[[1, 1]]"]) == 0
    assert path.read_bytes()[:6] == b"GIF89a"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "f.txt"], "must end in .png, .svg, .pdf or .gif, got 'f.txt'"),
        (["--element", "0,5,0"], "inside the output of shape (3, 2, 2), got (0, 5, 0)"),
        (["-o", "a.gif", "--element", "0,0,0"], "an animation shows every element"),
        (["--view", "1x1", "--x", "[[1, 2]]", "--weight", "[[1, 2]]"], "a 1 x 1 kernel"),
        (["--x", "[[1, 2]]"], "give both --x and --weight"),
    ],
    ids=["suffix", "element", "gif-element", "1x1", "half-given"],
)
def test_figure_command_bad_values_exit_2(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["figure", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


# --------------------------------------------------------------------------------------
# Groups and padding modes

#: Four input channels in two groups, two output channels per group.
GROUPED_X = np.arange(36).reshape(4, 3, 3) % 7
GROUPED_K = np.array(
    [
        [[[1, 0], [0, 1]], [[0, 1], [1, 0]]],
        [[[1, 1], [0, 0]], [[0, 0], [1, 1]]],
        [[[2, 0], [0, -1]], [[1, -1], [0, 1]]],
        [[[0, 1], [0, 1]], [[1, 0], [1, 0]]],
    ]
)  # (c_o=4, c_i/groups=2, 2, 2)


def test_grouped_inputs_view_sums_only_the_groups_channels(tmp_path: Path) -> None:
    path = tmp_path / "grouped.svg"
    mc.draw_conv(GROUPED_X, GROUPED_K, groups=2, element=(2, 1, 0), file=path)
    texts = svg_texts(path)
    # Y[2] is in group 1 (outputs 2, 3), which meets input channels 2 and 3 with K[2, 0]
    # and K[2, 1]; each partial result is that one channel correlated with its kernel.
    partials = [mc.corr2d(GROUPED_X[2 + n], GROUPED_K[2, n]) for n in range(2)]
    for n in range(2):
        assert contains_run(texts, numbers(GROUPED_K[2, n]))
        assert contains_run(texts, numbers(partials[n]))
    total = partials[0] + partials[1]
    assert np.array_equal(total, mc.conv(GROUPED_X, GROUPED_K, groups=2)[2])
    assert contains_run(texts, numbers(total))
    assert f"{partials[0][1, 0]} + {partials[1][1, 0]} = {total[1, 0]}" in texts
    # By hand: X[2] = [[4, 5, 6], [0, 1, 2], [3, 4, 5]] (arange(18, 27) % 7), its window at
    # (1, 0) is [[0, 1], [3, 4]], with K[2, 0] = [[2, 0], [0, -1]]: 4 * (-1) = -4.
    assert "channel 2: 0·2 + 1·0 + 3·0 + 4·(-1) = -4" in texts
    # Channels 0 and 1 take no part: drawn greyed, with a note, and no kernel.
    assert "not in group 1: X[0] feeds only Y[0]..Y[1]" in texts
    assert "not in group 1: X[1] feeds only Y[0]..Y[1]" in texts
    assert not any(text.startswith(("channel 0:", "channel 1:")) for text in texts)
    assert "K[2, 2]" not in texts
    assert texts[0].startswith(f"Y[2, 1, 0] = {total[1, 0]}: groups=2: Y[2] is in group 1")


def test_depthwise_reads_as_one_channel_per_output(tmp_path: Path) -> None:
    inputs, outputs = tmp_path / "dw.svg", tmp_path / "dw_outputs.svg"
    x = GROUPED_X[:3]
    k = GROUPED_K[:3, :1]  # (3, 1, 2, 2): one kernel per input channel
    mc.draw_conv(x, k, groups=3, element=(1, 0, 1), file=inputs)
    texts = svg_texts(inputs)
    assert (
        "groups=3 (depthwise): Y[1] is in group 1, so only input channel 1 takes part" in (texts[0])
    )
    assert contains_run(texts, numbers(mc.corr2d(x[1], k[1, 0])))
    assert "one channel: nothing to add" in texts
    mc.draw_conv(x, k, groups=3, view="outputs", file=outputs)
    texts = svg_texts(outputs)
    for o in range(3):
        assert f"K[{o}, 0] (X[{o}])" in texts  # each kernel drawn under its input channel
        assert contains_run(texts, numbers(mc.corr2d(x[o], k[o, 0])))


def test_reflect_padding_shows_the_reflected_values(tmp_path: Path) -> None:
    path = tmp_path / "reflect.svg"
    mc.draw_conv(padding=1, padding_mode="reflect", element=(0, 0, 0), file=path)
    texts = svg_texts(path)
    for c in range(2):
        # np.pad's "reflect" mirrors about the edge without repeating it, as PyTorch does.
        padded = np.pad(BOOK_X[c], 1, mode="reflect")
        assert contains_run(texts, numbers(padded))
        assert contains_run(texts, numbers(mc.corr2d(padded, BOOK_K3[0, c])))
    # By hand: X[0]'s reflected top-left corner is [[4, 3], [1, 0]]; with K = [[0, 1], [2, 3]]
    # channel 0 gives 0 + 3 + 2 + 0 = 5; X[1]'s is [[5, 4], [2, 1]] with K + 1: 5 + 8 + 6 + 4.
    assert "channel 0: 4·0 + 3·1 + 1·2 + 0·3 = 5" in texts
    assert "channel 1: 5·1 + 4·2 + 2·3 + 1·4 = 23" in texts
    assert "5 + 23 = 28" in texts
    expected = mc.conv(BOOK_X, BOOK_K3, padding=1, padding_mode="reflect")[0]
    assert expected[0, 0] == 28
    assert contains_run(texts, numbers(expected))
    assert "X[0] padded (reflect)" in texts
    assert "<pattern" in path.read_text(encoding="utf-8")  # still hatched
    assert any("padding (reflect: mirrored about the edge)" in text for text in texts)


@pytest.mark.parametrize("mode", ["replicate", "circular", "symmetric"])
def test_every_padding_mode_draws_its_padding(mode: str, tmp_path: Path) -> None:
    path = tmp_path / f"{mode}.svg"
    mc.draw_conv(padding=1, padding_mode=mode, view="outputs", file=path)
    texts = svg_texts(path)
    for c in range(2):
        # NumPy's names for the same modes: edge, wrap, symmetric.
        if mode == "replicate":
            padded = np.pad(BOOK_X[c], 1, mode="edge")
        elif mode == "circular":
            padded = np.pad(BOOK_X[c], 1, mode="wrap")
        else:
            padded = np.pad(BOOK_X[c], 1, mode="symmetric")
        assert contains_run(texts, numbers(padded))
    result = mc.conv(BOOK_X, BOOK_K3, padding=1, padding_mode=mode)
    for o in range(3):
        assert contains_run(texts, numbers(result[o]))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"X": [1, 2, 3], "K": [1, -1]}, ValueError, "figures draw 2-d convolutions"),
        (
            {"X": np.ones((1, 2, 3, 3)), "K": np.ones((1, 2, 2, 2))},
            ValueError,
            r"figures draw 2-d convolutions.*X of shape \(1, 2, 3, 3\)",
        ),
        ({"groups": 3}, ValueError, "groups=3 does not divide"),
        ({"groups": True}, TypeError, "groups must be an int, got True"),
        ({"padding_mode": "mirror"}, ValueError, "padding_mode must be one of .*'mirror'"),
        ({"padding": 3, "padding_mode": "reflect"}, ValueError, "padding_mode='reflect' needs"),
        (
            {"X": np.ones((4, 3, 3)), "K": np.ones((2, 4, 2, 2)), "groups": 2},
            ValueError,
            r"Given groups=2, weight of shape \(2, 4, 2, 2\), expected x .* to have 8 channels",
        ),
        (
            {"X": np.ones((2, 3, 3)), "K": np.ones((2, 1, 1, 1)), "view": "1x1", "groups": 2},
            ValueError,
            "view='1x1' draws groups=1",
        ),
    ],
    ids=[
        "1-d",
        "batched",
        "groups",
        "groups-bool",
        "mode",
        "reflect-too-wide",
        "kernel-vs-groups",
        "1x1-groups",
    ],
)
def test_unsupported_problems_are_refused_before_any_work(
    kwargs: dict[str, object], error: type, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "never.svg"
    with pytest.raises(error, match=message):
        mc.draw_conv(file=path, **kwargs)  # type: ignore[arg-type]
    assert not path.exists()


def test_animation_takes_groups_and_padding_mode(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    path = mc.animate_conv(
        tmp_path / "dw.gif", GROUPED_X, GROUPED_K, groups=2, padding=1, padding_mode="circular"
    )
    with image.open(path) as gif:
        assert gif.n_frames == 4 * 4 * 4  # Y of shape (4, 4, 4)


def test_figure_command_groups_and_padding_mode(tmp_path: Path) -> None:
    path = tmp_path / "cli.svg"
    x, k = "[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]", "[[[[1, 0]]], [[[0, 1]]]]"
    args = ["figure", "-o", str(path), "--x", x, "--weight", k, "--groups", "2"]
    assert main([*args, "--padding", "1", "--padding-mode", "replicate", "--element", "1,0,0"]) == 0
    texts = svg_texts(path)
    # X[1] replicate-padded: its top-left 1 x 2 window is [5, 5]; K[1, 0] = [0, 1] gives 5.
    assert contains_run(texts, numbers(np.pad([[5, 6], [7, 8]], 1, mode="edge")))
    assert "channel 1: 5·0 + 5·1 = 5" in texts
    assert "not in group 1: X[0] feeds only Y[0]" in texts


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--groups", "3"], "groups=3 does not divide"),
        (["--padding-mode", "mirror"], "invalid choice: 'mirror'"),
        (["--padding", "3", "--padding-mode", "reflect"], "padding_mode='reflect' needs"),
    ],
    ids=["groups", "mode", "reflect-too-wide"],
)
def test_figure_command_refuses_bad_groups_and_modes(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    status: object
    try:
        status = main(["figure", *args])
    except SystemExit as exit_:  # argparse refuses an unknown choice itself
        status = exit_.code
    assert status == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
