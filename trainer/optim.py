"""AdamW over fp32 master weights for a model whose parameters are held in bf16.

param_dtype bf16 (trainer config): the decoder runs in plain bf16 (no autocast: no per-matmul
weight casts, bf16 residual stream/norm outputs/rotary, half the activation traffic), while the
optimizer keeps an fp32 master copy of every trained parameter plus fp32 Adam moments. A step:
bf16 grads -> fp32 (times the clipping factor) -> fused AdamW on the masters -> masters rounded
back into the bf16 parameters. The fp32 grads exist for one chunk of parameters at a time, so
memory is bf16 params + bf16 grads + fp32 masters + 2 fp32 moments (16 B/param, as fp32 training).
Masters are saved with the optimizer state, so a resumed run continues from the exact fp32 weights.
"""
from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 28  # fp32 grads materialised at once (1 GiB)


class MasterAdamW(torch.optim.AdamW):
    def __init__(self, groups: list[dict], low_dtype=torch.bfloat16, chunk_elements: int = CHUNK_ELEMENTS, **kw):
        """`groups`: [{"params": [fp32 model params], **group options}]. The masters are cloned
        from the fp32 values first; then the model params are cast to `low_dtype` in place."""
        self.model_params: list[list[torch.nn.Parameter]] = []
        chunks = []
        for g in groups:
            opts = {k: v for k, v in g.items() if k != "params"}
            cur, n = [], 0
            for p in g["params"]:
                if cur and n + p.numel() > chunk_elements:
                    chunks.append((cur, opts))
                    cur, n = [], 0
                cur.append(p)
                n += p.numel()
            if cur:
                chunks.append((cur, opts))
        master_groups = []
        for ps, opts in chunks:
            self.model_params.append(ps)
            master_groups.append({"params": [p.detach().float().clone() for p in ps], **opts})
        super().__init__(master_groups, **kw)
        self.clip_factor: torch.Tensor | float = 1.0  # clipping factor, set by the trainer per step
        with torch.no_grad():
            for ps in self.model_params:
                for p in ps:
                    p.data = p.data.to(low_dtype)

    @torch.no_grad()
    def step(self, closure=None):
        groups = self.param_groups
        try:
            for g, ps in zip(groups, self.model_params):
                masters = g["params"]
                for m, p in zip(masters, ps):
                    m.grad = None if p.grad is None else p.grad.float().mul_(self.clip_factor)
                self.param_groups = [g]
                super().step()
                for m in masters:
                    m.grad = None
                torch._foreach_copy_(ps, masters)  # round the updated masters into the bf16 params
        finally:
            self.param_groups = groups
        return None

    def zero_grad(self, set_to_none: bool = True):
        for ps in self.model_params:
            for p in ps:
                p.grad = None
        super().zero_grad(set_to_none)

    def state_dict(self):
        sd = super().state_dict()
        sd["master_weights"] = [m.detach().clone() for g in self.param_groups for m in g["params"]]
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        masters = state_dict.pop("master_weights", None)
        super().load_state_dict(state_dict)
        if masters is not None:
            with torch.no_grad():
                mine = [m for g in self.param_groups for m in g["params"]]
                if len(mine) != len(masters):
                    raise ValueError(f"checkpoint has {len(masters)} master tensors, this optimizer {len(mine)}")
                for m, saved in zip(mine, masters):
                    m.copy_(saved)
                for g, ps in zip(self.param_groups, self.model_params):
                    torch._foreach_copy_(ps, g["params"])

    @torch.no_grad()
    def restore_fp32(self):
        """Put the fp32 master values back into the model parameters (for export)."""
        for g, ps in zip(self.param_groups, self.model_params):
            for m, p in zip(g["params"], ps):
                p.data = m.detach().clone()


def grad_norm(params) -> torch.Tensor:
    """Total L2 norm of the grads, each tensor's norm accumulated and returned in fp32."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = [torch.linalg.vector_norm(g, dtype=torch.float32) for g in grads]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())
