"""Where a CNN's training step goes, layer by layer: each convolution's forward, input-gradient
and weight-gradient time against its FLOPs, to see which layers run far below the machine's
rate (the three passes have the same FLOPs, so a pass much slower than the forward is
kernel inefficiency, not work).

    python -m benchmarks.conv_layers [--model vgg_cnn] [--batch 64] [--crop 40] [--threads 1]

bf16 autocast and channels_last, as the CPU sweep configs train.
"""
from __future__ import annotations

import torch

from benchmarks.common import cli, header, median_time, parser
from fer.models import create_model


def conv_inputs(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[torch.nn.Conv2d, torch.Tensor]]:
    """Each Conv2d with the input it sees in a forward pass (hooks record them)."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].detach())))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    for h in hooks:
        h.remove()
    return seen


def pass_times(conv: torch.nn.Conv2d, x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Seconds of the forward, the input gradient and the weight (+bias) gradient, in bf16."""
    w = conv.weight.detach().to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    args = (conv.stride, conv.padding, conv.dilation, False, (0, 0), conv.groups)
    y = torch.ops.aten.convolution(x, w, None, *args)
    grad = torch.randn_like(y)
    bias = [w.shape[0]] if conv.bias is not None else None

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(grad, x, w, bias, *args, mask)

    times = {"forward": lambda: torch.ops.aten.convolution(x, w, None, *args),
             "input grad": backward([True, False, False]),
             "weight grad": backward([False, True, conv.bias is not None])}
    for fn in times.values():
        fn()  # oneDNN builds its kernels on the first call
    return {k: median_time(fn, repeats) for k, fn in times.items()}


def step_time(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Seconds of one whole training step (bf16 forward, backward, SGD update) at this batch."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    y = torch.randint(0, 7, (len(x),))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    return median_time(step, repeats)


def main() -> None:
    p = parser()
    p.add_argument("--model", default="vgg_cnn")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--crop", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    header(f"Convolution passes of {args.model} (batch {args.batch}, {args.crop}x{args.crop}, bf16, channels_last)")
    model = create_model(args.model).to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 1, args.crop, args.crop).contiguous(memory_format=torch.channels_last)
    print("| layer | in -> out, size | GFLOP | forward ms | input grad ms | weight grad ms | weight grad / forward |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    total, first_input_grad = dict.fromkeys(("forward", "input grad", "weight grad"), 0.0), 0.0
    for i, (conv, inp) in enumerate(conv_inputs(model, x)):
        t = pass_times(conv, inp, args.repeats)
        h, w = inp.shape[-2:]
        gflop = 2 * args.batch * h * w * conv.in_channels * conv.out_channels * conv.weight[0, 0].numel() / 1e9
        print(f"| {i} | {conv.in_channels} -> {conv.out_channels}, {h}x{w} | {gflop:.2f} | {t['forward'] * 1e3:.1f} | "
              f"{t['input grad'] * 1e3:.1f} | {t['weight grad'] * 1e3:.1f} | {t['weight grad'] / t['forward']:.1f}x |")
        total = {k: total[k] + t[k] for k in total}
        if i == 0:
            first_input_grad = t["input grad"]
    print(f"| all | | | {total['forward'] * 1e3:.1f} | {total['input grad'] * 1e3:.1f} | "
          f"{total['weight grad'] * 1e3:.1f} | {total['weight grad'] / total['forward']:.1f}x |\n")
    step = step_time(model, x, args.repeats)
    conv = sum(total.values()) - first_input_grad  # the first layer's input needs no gradient
    print(f"whole training step: {step * 1e3:.0f} ms ({args.batch / step:.0f} images/s); "
          f"convolutions about {conv / step:.0%} of it\n")


if __name__ == "__main__":
    cli(main)
