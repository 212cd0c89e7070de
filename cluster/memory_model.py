"""Memory per rank of DeepSpeed training, phase by phase, from parameter counts and DeepSpeed's own settings (no model
is built; nothing is fitted to a measurement). Read off DeepSpeed 0.19's ZeRO optimizers and torch's AdamW:

P = parameters, N = world size, T = the largest tensor (the item table; its output layer is tied to it), w/g =
bytes of a weight/gradient (bf16 on GPU: 2; fp32 on CPU: 4), K = the reduce bucket (interest_core.zero: the
elements of DeepSpeed's `torch.empty` bucket that gradients pass through; only the touched part, min(K, P), is
resident).

Persistent (alive between steps; gradients are freed by zero_grad):
  ZeRO-0: w P + master + 8 P (Adam moments); master = 4 P under bf16 (DeepSpeed's BF16 optimizer), none in fp32
  ZeRO-1/2: w P (the flat weight buffer) + 4 P / N (the fp32 master partition, kept even for an fp32 model)
            + 8 P / N
  ZeRO-3: (w + g + 4 + 8) P / N (weight, gradient and master partitions, Adam) + g min(K, P)
Activations + loss logits (A): counted in every phase, because both glibc's heap (CPU) and PyTorch's caching
  allocator (GPU) keep the forward's freed blocks for the next step.
Phase transients on top (the peak is the largest):
  forward:  ZeRO-3 gathers the tied item table for the whole forward (w T)
  backward: the tied table gets two dense gradients (its lookup and the output layer) before autograd sums them
            (+ g T); ZeRO-0/1 hold every gradient (g P); ZeRO-2 the table's gradient (g T) and the gradient
            partition (g P / N); ZeRO-3 the gathered table (w T) and the table's gradient (g T)
  step:     ZeRO-0: the gradients (g P) and the larger of the flat all-reduce bucket (g min(K, P)) and Adam's
            temporaries; ZeRO-1: the gradients (g P), the averaged partition (4 P / N) and the temporaries;
            ZeRO-2: the gradient partition (4 P / N) and the temporaries; ZeRO-3: the temporaries.
  Adam's temporaries: torch's AdamW on CPU steps tensor by tensor and holds two temporaries of the largest
  tensor it steps (sqrt(v) and its division: 2 x 4 bytes x T at ZeRO-0, x T / N of the flat partition above);
  on GPU its foreach path holds one fp32 temporary of the whole (partitioned) parameter list (4 P or 4 P / N).
  build:    the full model in fp32 on every rank before DeepSpeed flattens or partitions it (4 P, plus the flat
            copy and the master partition at ZeRO-1/2, the weight partition at ZeRO-3): a peak only for small models.
Not modelled: the process's fixed runtime (CUDA context and NCCL buffers on GPU; on CPU DeepSpeed's shared-memory
all-reduce workspace, 2 x (1 + 32) MiB per rank, imports and thread pools); bench/plan_vs_measured.py measures
above a worker that has already trained a tiny model, i.e. with that runtime in place.
"""
from __future__ import annotations


def rank_memory(params: int, largest: int, tied: bool, world: int, stage: int, bf16: bool, activations: float,
                logits: float, bucket_elements: int) -> dict:
    """Bytes per rank: {"model_states", "activations", "loss_logits", "transient", "peak_phase", "total"}."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage must be 0-3, not {stage}")
    p, t, n = float(params), float(largest), float(world)
    w = g = 2.0 if bf16 else 4.0
    bucket = g * min(bucket_elements, p)
    dup = g * t if tied else 0.0  # the tied table's second dense gradient
    if bf16:  # foreach AdamW: one fp32 temporary over the (partitioned) parameter list
        temps = 4 * p if stage == 0 else 4 * p / n
    else:  # single-tensor AdamW: sqrt(v) and sqrt(v) / bias_correction of the largest tensor stepped
        temps = 2 * 4 * (t if stage == 0 else t / n)
    run = activations + logits
    if stage == 0:
        states = w * p + (4 * p if bf16 else 0) + 8 * p
        phases = {"backward": g * p + dup, "step": g * p + max(bucket, temps)}
        build = 4 * p
    elif stage in (1, 2):
        states = w * p + 12 * p / n
        if stage == 1:
            phases = {"backward": g * p + dup, "step": g * p + 4 * p / n + temps}
        else:
            phases = {"backward": g * t + dup + g * p / n, "step": 4 * p / n + temps}
        build = 4 * p + w * p + 4 * p / n  # the model's fp32 tensors while DeepSpeed copies them into the flat buffer
    else:
        states = (w + g + 12) * p / n + bucket
        phases = {"forward": w * t, "backward": w * t + g * t + dup, "step": temps}
        build = 4 * p + w * p / n  # the whole model is built on every rank before it is partitioned
    totals = {k: states + run + v for k, v in phases.items()}
    totals["build"] = build
    phase = max(totals, key=totals.get)
    return {"model_states": states, "activations": activations, "loss_logits": logits,
            "transient": max(0.0, totals[phase] - states - run), "peak_phase": phase, "total": totals[phase]}
