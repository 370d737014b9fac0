"""Whole-network forward time with every convolution done by mimo_conv, against PyTorch.

    python benchmarks/bench_conv.py --models --no-suite     # through the main benchmark
    python benchmarks/bench_conv.py --models --torchvision --no-suite   # torchvision's nets
    python benchmarks/bench_models.py --child mimo --threads 1   # one child, JSON out

With ``--torchvision`` (torchvision installed) the networks are torchvision's own, built
with random weights: ResNet-18, MobileNet-V3-Small, EfficientNet-B0, ConvNeXt-Tiny and the
video ResNet R3D-18 (3-d convolutions). The torchvision wheels next to PyTorch 2.13 CPU on
the benchmark machine fail to import ("operator torchvision::nms does not exist"); torch
2.14.1 with torchvision 0.29.1 in a separate environment works. Without the flag the
networks are written here in plain ``torch.nn`` with random weights:
ResNet-18, a MobileNet-V3-like net (inverted residuals with depthwise 3x3/5x5 kernels and
squeeze-and-excite 1x1 convolutions on 1x1 maps), a small U-Net (transposed 2x2 upsampling)
and a dilated 1-d net (WaveNet-like dilations 1 ... 32). In the mimo_conv child every
``Conv{1,2,3}d`` and ``ConvTranspose{1,2,3}d`` module's forward is replaced by
:func:`mimo_conv.conv` / :func:`mimo_conv.conv_transpose` on the tensors' NumPy views;
batch norms, activations and pooling stay PyTorch's. Both children run in eval mode
under ``torch.no_grad()``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h


def torchvision_models(*, quick: bool) -> dict[str, tuple[Any, tuple[int, ...]]]:
    """torchvision's networks with random weights, and their input shapes."""
    import torch  # noqa: PLC0415
    from torchvision import models  # noqa: PLC0415 - optional, only for --torchvision
    from torchvision.models import video  # noqa: PLC0415

    torch.manual_seed(0)
    side, frames, clip = (64, 4, 56) if quick else (224, 16, 112)
    return {
        "tv-resnet18": (models.resnet18(weights=None), (1, 3, side, side)),
        "tv-mobilenet-v3-small": (models.mobilenet_v3_small(weights=None), (1, 3, side, side)),
        "tv-efficientnet-b0": (models.efficientnet_b0(weights=None), (1, 3, side, side)),
        "tv-convnext-tiny": (models.convnext_tiny(weights=None), (1, 3, side, side)),
        "tv-r3d-18": (video.r3d_18(weights=None), (1, 3, frames, clip, clip)),
    }


def build_models(
    *, quick: bool, torchvision: bool = False
) -> dict[str, tuple[Any, tuple[int, ...]]]:
    """The networks and their input shapes (smaller inputs for --quick)."""
    if torchvision:
        return torchvision_models(quick=quick)
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    torch.manual_seed(0)

    class BasicBlock(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.down = None
            if stride != 1 or c_in != c_out:
                self.down = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
                )

        def forward(self, x: Any) -> Any:
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return torch.relu(out + (x if self.down is None else self.down(x)))

    def resnet18() -> Any:
        layers: list[Any] = [
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        ]
        c_in = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
        return nn.Sequential(*layers)

    class SqueezeExcite(nn.Module):
        def __init__(self, channels: int, reduced: int) -> None:
            super().__init__()
            self.reduce = nn.Conv2d(channels, reduced, 1)
            self.expand = nn.Conv2d(reduced, channels, 1)

        def forward(self, x: Any) -> Any:
            scale = nn.functional.adaptive_avg_pool2d(x, 1)
            scale = torch.sigmoid(self.expand(torch.relu(self.reduce(scale))))
            return x * scale

    class InvertedResidual(nn.Module):
        def __init__(self, c_in: int, hidden: int, c_out: int, kernel: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(c_in, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.Hardswish(),
                nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
                nn.BatchNorm2d(hidden),
                nn.Hardswish(),
                SqueezeExcite(hidden, max(8, hidden // 4)),
                nn.Conv2d(hidden, c_out, 1, bias=False),
                nn.BatchNorm2d(c_out),
            )
            self.residual = stride == 1 and c_in == c_out

        def forward(self, x: Any) -> Any:
            out = self.body(x)
            return out + x if self.residual else out

    def mobilenet() -> Any:
        blocks = [(16, 16, 16, 3, 2), (16, 72, 24, 3, 2), (24, 88, 24, 3, 1)]
        blocks += [(24, 96, 40, 5, 2), (40, 240, 40, 5, 1), (40, 120, 48, 5, 1)]
        blocks += [(48, 288, 96, 5, 2), (96, 576, 96, 5, 1)]
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False),
            nn.BatchNorm2d(16),
            nn.Hardswish(),
            *(InvertedResidual(*block) for block in blocks),
            nn.Conv2d(96, 576, 1, bias=False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(576, 1000),
        )

    def double_conv(c_in: int, c_out: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1),
            nn.ReLU(),
        )

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down1, self.down2 = double_conv(3, 32), double_conv(32, 64)
            self.middle = double_conv(64, 128)
            self.up2 = nn.ConvTranspose2d(128, 64, 2, stride=2)
            self.dec2 = double_conv(128, 64)
            self.up1 = nn.ConvTranspose2d(64, 32, 2, stride=2)
            self.dec1 = double_conv(64, 32)
            self.head = nn.Conv2d(32, 2, 1)

        def forward(self, x: Any) -> Any:
            first = self.down1(x)
            second = self.down2(nn.functional.max_pool2d(first, 2))
            middle = self.middle(nn.functional.max_pool2d(second, 2))
            up = self.dec2(torch.cat([self.up2(middle), second], 1))
            up = self.dec1(torch.cat([self.up1(up), first], 1))
            return self.head(up)

    class Dilated1d(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Conv1d(16, 64, 1)
            self.layers = nn.ModuleList(
                nn.Conv1d(64, 64, 3, padding=d, dilation=d) for d in (1, 2, 4, 8, 16, 32)
            )
            self.out = nn.Conv1d(64, 16, 1)

        def forward(self, x: Any) -> Any:
            x = self.inp(x)
            for layer in self.layers:
                x = x + torch.tanh(layer(x))
            return self.out(x)

    side, unet_side, length = (64, 32, 512) if quick else (224, 128, 8192)
    return {
        "resnet18": (resnet18(), (1, 3, side, side)),
        "mobilenet-v3-like": (mobilenet(), (1, 3, side, side)),
        "unet-small": (UNet(), (1, 3, unet_side, unet_side)),
        "dilated-1d": (Dilated1d(), (1, 16, length)),
    }


def use_mimo_conv(model: Any) -> int:
    """Replace every convolution module's forward by mimo_conv; return how many."""
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    import mimo_conv as mc  # noqa: PLC0415

    replaced = 0
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            module.forward = _forward(module, mc.conv, transposed=False, torch=torch)  # type: ignore[method-assign]
            replaced += 1
        elif isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            module.forward = _forward(  # type: ignore[method-assign]
                module, mc.conv_transpose, transposed=True, torch=torch
            )
            replaced += 1
    return replaced


def _forward(module: Any, function: Callable[..., Any], *, transposed: bool, torch: Any) -> Any:
    weight = module.weight.detach().numpy()
    bias = None if module.bias is None else module.bias.detach().numpy()
    options: dict[str, Any] = {
        "stride": module.stride,
        "padding": module.padding,
        "dilation": module.dilation,
        "groups": module.groups,
    }
    if transposed:
        options["output_padding"] = module.output_padding

    def forward(x: Any) -> Any:
        return torch.from_numpy(function(x.detach().numpy(), weight, bias, **options))

    return forward


def child(kind: str, threads: int, *, quick: bool, torchvision: bool = False) -> dict[str, Any]:
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    torch.set_num_threads(threads)
    results: dict[str, Any] = {}
    repeats, max_seconds = (2, 1.0) if quick else (5, 8.0)
    for name, (model, shape) in build_models(quick=quick, torchvision=torchvision).items():
        model.eval()
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            reference = model(x).numpy()
            replaced = use_mimo_conv(model) if kind == "mimo" else 0
            output = model(x).numpy()

            def run(model: Any = model, x: Any = x) -> object:
                with torch.no_grad():
                    return model(x)

            timing = h.time_block(run, repeats=repeats, max_seconds=max_seconds, pause=0.05)
        scale = float(np.abs(reference).max()) or 1.0
        results[name] = {
            "seconds": timing.median,
            "convs_replaced": replaced,
            "max_relative_difference": float(np.abs(output - reference).max()) / scale,
        }
    return results


def measure(
    settings: list[int], processes: int, *, quick: bool, torchvision: bool = False
) -> list[dict[str, Any]]:
    """Run alternating mimo_conv / PyTorch children; one row per model and thread setting."""
    import bench_conv  # noqa: PLC0415

    rows = []
    for threads in settings:
        seconds: dict[tuple[str, str], list[float]] = {}
        details: dict[str, Any] = {}
        for process in range(processes):
            for kind in ("mimo", "torch") if process % 2 == 0 else ("torch", "mimo"):
                extra = (["--quick"] if quick else []) + (["--torchvision"] if torchvision else [])
                command_result = _run(kind, threads, extra, bench_conv)
                for name, entry in command_result.items():
                    seconds.setdefault((name, kind), []).append(entry["seconds"])
                    if kind == "mimo":
                        details[name] = entry
        for name in details:
            ours, theirs = seconds[(name, "mimo")], seconds.get((name, "torch"), [])
            rows.append(
                {
                    "model": name,
                    "threads": threads,
                    "seconds": statistics.median(ours),
                    "spread": _spread(ours),
                    "torch_seconds": statistics.median(theirs) if theirs else None,
                    "torch_spread": _spread(theirs) if theirs else None,
                    "vs_torch": statistics.median(ours) / statistics.median(theirs)
                    if theirs
                    else None,
                    "convs": details[name]["convs_replaced"],
                    "max_relative_difference": details[name]["max_relative_difference"],
                }
            )
    return rows


def _spread(values: list[float]) -> float:
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if len(values) > 1 and middle > 0 else 0.0


def _run(kind: str, threads: int, extra: list[str], bench_conv: Any) -> dict[str, Any]:
    import subprocess  # noqa: PLC0415

    command = [sys.executable, __file__, "--child", kind, "--threads", str(threads), *extra]
    completed = subprocess.run(
        command,
        env=bench_conv.child_environment(threads),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        msg = f"model benchmark child {kind!r} failed with exit code {completed.returncode}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def markdown(rows: list[dict[str, Any]]) -> str:
    headers = [
        "model",
        "threads",
        "convs",
        "mimo_conv",
        "spread",
        "torch",
        "spread",
        "mimo / torch",
        "max rel. diff",
    ]
    body = [
        [
            row["model"],
            row["threads"],
            row["convs"],
            h.format_seconds(row["seconds"]),
            f"{100 * row['spread']:.0f}%",
            h.format_seconds(row["torch_seconds"] or float("nan")),
            f"{100 * (row['torch_spread'] or 0):.0f}%",
            f"{row['vs_torch']:.2f}x" if row["vs_torch"] else "-",
            f"{row['max_relative_difference']:.1e}",
        ]
        for row in rows
    ]
    means = []
    for threads in sorted({row["threads"] for row in rows}):
        ratios = [r["vs_torch"] for r in rows if r["threads"] == threads and r["vs_torch"]]
        if ratios:
            means.append(f"{threads} thread(s): geometric mean {h.geometric_mean(ratios):.2f}x")
    return (
        "## Whole networks (float32, random weights, every convolution by mimo_conv)\n\n"
        + h.markdown_table(headers, body)
        + ("\n\n" + "; ".join(means) if means else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["mimo", "torch"], required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--torchvision", action="store_true", help="torchvision's networks")
    args = parser.parse_args(argv)
    result = child(args.child, args.threads, quick=args.quick, torchvision=args.torchvision)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
