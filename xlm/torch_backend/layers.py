"""Building blocks of the PyTorch XLM: attention, feed-forward, output layers and pooling heads."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from xlm.config import XLMConfig

ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


class XLMMultiHeadAttention(nn.Module):
    """Multi-head self-attention with an optional key/value cache for incremental decoding.

    Runs `scaled_dot_product_attention` unless attention weights or a head mask are asked for,
    attention dropout is on during CPU training, or `attn_implementation` is "eager"; the explicit
    path scales q before q·kᵀ, fills masked scores with the dtype's minimum and takes the softmax
    in float32, as the reference does.
    """

    def __init__(self, config: XLMConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.dim = config.emb_dim
        self.n_heads = config.n_heads
        self.head_dim = config.emb_dim // config.n_heads
        self.dropout = config.attention_dropout
        self.attn_implementation = "sdpa"

        self.q_lin = nn.Linear(self.dim, self.dim)
        self.k_lin = nn.Linear(self.dim, self.dim)
        self.v_lin = nn.Linear(self.dim, self.dim)
        self.out_lin = nn.Linear(self.dim, self.dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool = False,
        cache: dict | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend over `hidden_states` (batch, qlen, dim).

        `mask` is boolean, True where a query may attend a key, broadcastable to
        (batch, n_heads, qlen, klen), or None; `is_causal` (with `mask` None) asks for the lower
        triangle. Returns the output (batch, qlen, dim) and the attention probabilities (or None).
        """
        bs, qlen, _ = hidden_states.shape
        # Linear layers see (tokens, dim): their weight gradients then need no transposed copy
        tokens = hidden_states.reshape(bs * qlen, self.dim)
        q = self.q_lin(tokens).view(bs, qlen, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_lin(tokens).view(bs, qlen, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_lin(tokens).view(bs, qlen, self.n_heads, self.head_dim).transpose(1, 2)
        if cache is not None:
            if self.layer_idx in cache:
                k_past, v_past = cache[self.layer_idx]
                k = torch.cat([k_past, k], dim=2)
                v = torch.cat([v_past, v], dim=2)
            cache[self.layer_idx] = (k, v)
        # q, k, v: (bs, n_heads, qlen | klen, head_dim)

        weights = None
        # SDPA has no fused kernel with dropout on CPU; its fallback is slower than the explicit path
        cpu_dropout = self.training and self.dropout > 0 and q.device.type == "cpu"
        if output_attentions or head_mask is not None or cpu_dropout or self.attn_implementation == "eager":
            q = q / math.sqrt(self.head_dim)
            scores = torch.matmul(q, k.transpose(2, 3))  # (bs, n_heads, qlen, klen)
            if is_causal and mask is None:
                mask = torch.ones(qlen, k.shape[2], dtype=torch.bool, device=q.device).tril()
            if mask is not None:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            weights = F.softmax(scores.float(), dim=-1).to(scores.dtype)
            weights = F.dropout(weights, self.dropout, self.training)
            if head_mask is not None:
                weights = weights * head_mask
            context = torch.matmul(weights, v)
        else:
            context = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=is_causal and mask is None,
            )
        context = context.transpose(1, 2).reshape(bs * qlen, self.dim)
        return self.out_lin(context).view(bs, qlen, self.dim), (weights if output_attentions else None)


class XLMTransformerFFN(nn.Module):
    """Position-wise feed-forward block: lin1 (dim → 4·dim), GELU (erf) or ReLU, lin2, dropout."""

    def __init__(self, config: XLMConfig) -> None:
        super().__init__()
        self.dropout = config.dropout
        self.lin1 = nn.Linear(config.emb_dim, 4 * config.emb_dim)
        self.lin2 = nn.Linear(4 * config.emb_dim, config.emb_dim)
        self.act = F.gelu if config.gelu_activation else F.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, x.shape[-1])  # (tokens, dim): see XLMMultiHeadAttention
        out = self.lin2(self.act(self.lin1(tokens))).view(x.shape)
        return F.dropout(out, self.dropout, self.training)


class _LMCrossEntropy(torch.autograd.Function):
    """Mean cross entropy over rows whose label is not -100 (equal to `F.cross_entropy`).

    Its backward turns the saved log-probabilities into the gradient in place, about twice as fast
    as autograd's log_softmax + nll_loss backward on a large vocabulary (no zero-filled buffer, one
    pass fewer over the tokens × vocabulary scores).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = labels != -100
        targets = torch.where(valid, labels, 0)
        log_probs = torch.log_softmax(logits, dim=-1)
        n_valid = valid.sum()
        loss = -(log_probs.gather(1, targets[:, None]).squeeze(1) * valid).sum() / n_valid
        ctx.save_for_backward(log_probs, targets, valid, n_valid)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor, None]:
        log_probs, targets, valid, n_valid = ctx.saved_tensors
        grad = log_probs.exp_()  # softmax, in the saved buffer (a second backward would raise)
        grad.scatter_add_(1, targets[:, None], torch.full_like(grad[:, :1], -1.0))
        # no valid label: the loss is NaN (0/0) but the gradient zero, as with F.cross_entropy
        grad.mul_((valid * (grad_loss / n_valid.clamp(min=1))).to(grad.dtype)[:, None])
        return grad, None


VOCABULARY_BLOCK = 4096


def project_to_vocabulary(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`F.linear(x, weight, bias)` for a (vocabulary × dim) weight, bit for bit.

    On CPU a wide vocabulary is projected in blocks of 4,096 words and concatenated: MKL runs a
    30,145-wide product 1.06–1.32× slower than its blocks from 2 to 2,048 rows (one row: 0.95×,
    kept whole; `bench/bench_vocab_projection.py`).
    """
    n_words = weight.shape[0]
    rows = x.numel() // max(x.shape[-1], 1)
    if x.device.type != "cpu" or n_words <= 2 * VOCABULARY_BLOCK or rows < 2 or torch.compiler.is_compiling():
        return F.linear(x, weight, bias)
    blocks = []
    for start in range(0, n_words, VOCABULARY_BLOCK):
        words = slice(start, start + VOCABULARY_BLOCK)
        blocks.append(F.linear(x, weight[words], None if bias is None else bias[words]))
    return torch.cat(blocks, dim=-1)


class _LinearCrossEntropy(torch.autograd.Function):
    """logits = x @ weightᵀ + bias for every row, and the mean cross entropy of the rows whose label is
    not -100 (equal to `F.linear` then `F.cross_entropy`).

    The loss's backward runs on the labelled rows alone. With masked-LM labels (15 % of the tokens)
    it skips 85 % of the softmax and of the two (tokens × vocabulary × dim) gradient products, which
    autograd would spend on zero gradients. A gradient that reaches the returned logits (another loss
    on them) is added in full.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, labels: torch.Tensor):
        logits = project_to_vocabulary(x, weight, bias)
        rows = (labels != -100).nonzero().squeeze(1)
        if len(rows) == len(labels):
            picked, targets = logits, labels
        else:
            picked, targets = logits.index_select(0, rows), labels.index_select(0, rows)
        log_probs = torch.log_softmax(picked, dim=-1)
        # no labelled row: 0 / 0, NaN, as F.cross_entropy gives
        loss = -log_probs.gather(1, targets[:, None]).sum() / len(rows)  # a label outside [0, vocab) fails here
        ctx.save_for_backward(x, weight, rows, targets, log_probs)
        ctx.set_materialize_grads(False)  # unused logits: no zero-filled (tokens × vocabulary) gradient
        return logits, loss

    @staticmethod
    def backward(ctx, grad_logits: torch.Tensor | None, grad_loss: torch.Tensor | None):
        x, weight, rows, targets, log_probs = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_x = grad_weight = grad_bias = None
        if grad_logits is not None:
            grad_x = grad_logits @ weight if needs_x else None
            grad_weight = grad_logits.t() @ x if needs_weight else None
            grad_bias = grad_logits.sum(0) if needs_bias else None
        if grad_loss is None:
            return grad_x, grad_weight, grad_bias, None
        if len(rows) == 0:  # nothing labelled: zero gradients (not None), as F.cross_entropy gives
            if needs_x and grad_x is None:
                grad_x = torch.zeros_like(x)
            if needs_weight and grad_weight is None:
                grad_weight = torch.zeros_like(weight)
            if needs_bias and grad_bias is None:
                grad_bias = weight.new_zeros(weight.shape[0])
            return grad_x, grad_weight, grad_bias, None
        grad = log_probs.exp_()  # softmax, in the saved buffer (a second backward would raise)
        grad.scatter_add_(1, targets[:, None], torch.full_like(grad[:, :1], -1.0))
        grad.mul_(grad_loss / len(rows))
        every_row = len(rows) == len(x)
        if needs_x:
            part = grad @ weight
            if every_row:
                grad_x = part if grad_x is None else grad_x.add_(part)
            else:
                grad_x = (torch.zeros_like(x) if grad_x is None else grad_x).index_add_(0, rows, part)
        if needs_weight:
            part = grad.t() @ (x if every_row else x.index_select(0, rows))
            grad_weight = part if grad_weight is None else grad_weight.add_(part)
        if needs_bias:
            part = grad.sum(0)
            grad_bias = part if grad_bias is None else grad_bias.add_(part)
        return grad_x, grad_weight, grad_bias, None


def lm_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy of (..., vocab) logits against (...) labels, -100 ignored (not shifted)."""
    vocab = logits.shape[-1]
    logits, labels = logits.reshape(-1, vocab), labels.reshape(-1)
    if labels.device.type != "cpu" or torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        # the custom backward is measured on CPU only; autocast runs F.cross_entropy in float32
        return F.cross_entropy(logits, labels)
    return _LMCrossEntropy.apply(logits, labels)  # a label outside [0, vocab) fails in its gather


class XLMPredLayer(nn.Module):
    """Output layer of the LM head: a linear projection tied to the word embeddings, or an adaptive softmax.

    With `config.asm`, logits are the adaptive-softmax log-probabilities (batch, seq, vocab) and the
    loss is the adaptive-softmax loss over labels ≠ -100.
    """

    def __init__(self, config: XLMConfig) -> None:
        super().__init__()
        self.asm = config.asm
        self.vocab_size = config.vocab_size
        if config.asm:
            self.proj = nn.AdaptiveLogSoftmaxWithLoss(
                in_features=config.emb_dim,
                n_classes=config.vocab_size,
                cutoffs=list(config.asm_cutoffs),
                div_value=config.asm_div_value,
                head_bias=True,
            )
        else:
            self.proj = nn.Linear(config.emb_dim, config.vocab_size)

    def _plain_linear(self) -> bool:
        # a replaced or hooked projection (LoRA, quantisation) runs its own forward
        proj = self.proj
        return type(proj) is nn.Linear and not (proj._forward_hooks or proj._forward_pre_hooks)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if self._plain_linear() and not torch.is_autocast_enabled(x.device.type):
            return project_to_vocabulary(x, self.proj.weight, self.proj.bias)
        return self.proj(x)

    def _fused_loss(self, flat: torch.Tensor) -> bool:
        # the fused backward is measured on CPU only; autocast would mix dtypes inside it
        return (
            self._plain_linear()
            and flat.device.type == "cpu"
            and not torch.compiler.is_compiling()
            and not torch.is_autocast_enabled("cpu")
            and flat.dtype == self.proj.weight.dtype
        )

    def forward(
        self, hidden_states: torch.Tensor, labels: torch.Tensor | None = None, return_logits: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Return (logits, loss); loss is None without labels, logits None with `return_logits=False`
        (the loss alone, computed on the labelled positions only)."""
        flat = hidden_states.reshape(-1, hidden_states.shape[-1])
        if labels is not None and tuple(labels.shape) != tuple(hidden_states.shape[:-1]):
            raise ValueError(
                f"labels has shape {tuple(labels.shape)}; expected {tuple(hidden_states.shape[:-1])}, one label per "
                "input position (-100 where there is none)"
            )
        if not return_logits:
            if labels is None:
                raise ValueError("return_logits=False needs labels: the loss is all it returns")
            picked, targets = self._labelled_rows(flat, labels)
            if self.asm:
                return None, self.proj(picked, targets).loss
            return None, lm_cross_entropy(self._project(picked), targets)
        if not self.asm:
            shape = (*hidden_states.shape[:-1], self.vocab_size)
            if labels is not None and self._fused_loss(flat):
                logits, loss = _LinearCrossEntropy.apply(flat, self.proj.weight, self.proj.bias, labels.reshape(-1))
                return logits.view(shape), loss
            logits = self._project(flat).view(shape)
            loss = lm_cross_entropy(logits, labels) if labels is not None else None
            return logits, loss
        logits = self.proj.log_prob(flat).view(*hidden_states.shape[:-1], self.vocab_size)
        loss = self.proj(*self._labelled_rows(flat, labels)).loss if labels is not None else None
        return logits, loss

    @staticmethod
    def _labelled_rows(flat: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hidden states (rows, dim) and labels (rows,) of the positions whose label is not -100."""
        labels = labels.reshape(-1)
        rows = (labels != -100).nonzero().squeeze(1)
        return flat.index_select(0, rows), labels.index_select(0, rows)


class XLMSequenceSummary(nn.Module):
    """Pool a sequence into one vector ("first", "last", "mean" or "cls_index" token), then project.

    Dropout (`summary_first_dropout`), an optional Linear (`summary`, to num_labels or the hidden
    size), an optional tanh and `summary_last_dropout`, as configured.
    """

    def __init__(self, config: XLMConfig) -> None:
        super().__init__()
        self.summary_type = config.summary_type
        self.summary = nn.Identity()
        if config.summary_use_proj:
            if config.summary_proj_to_labels and config.num_labels > 0:
                n_out = config.num_labels
            else:
                n_out = config.emb_dim
            self.summary = nn.Linear(config.emb_dim, n_out)
        self.activation = nn.Tanh() if config.summary_activation == "tanh" else nn.Identity()
        first = config.summary_first_dropout or 0.0
        last = getattr(config, "summary_last_dropout", 0.0) or 0.0
        self.first_dropout = nn.Dropout(first) if first > 0 else nn.Identity()
        self.last_dropout = nn.Dropout(last) if last > 0 else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, cls_index: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states: (batch, ..., seq, dim) → (batch, ..., n_out)."""
        if self.summary_type == "last":
            output = hidden_states[:, -1]
        elif self.summary_type == "first":
            output = hidden_states[:, 0]
        elif self.summary_type == "mean":
            output = hidden_states.mean(dim=1)
        else:  # "cls_index": the token at cls_index (default: the last one)
            if cls_index is None:
                index = torch.full_like(hidden_states[..., :1, :], hidden_states.shape[-2] - 1, dtype=torch.long)
            else:
                index = cls_index[..., None, None].expand(*cls_index.shape, 1, hidden_states.shape[-1])
            output = hidden_states.gather(-2, index).squeeze(-2)
        output = self.first_dropout(output)
        output = self.summary(output)
        output = self.activation(output)
        return self.last_dropout(output)


def _apply_p_mask(x: torch.Tensor, p_mask: torch.Tensor | None) -> torch.Tensor:
    """x·(1 − p) − big·p: positions with p_mask 1 cannot be chosen (65500 in float16, 1e30 otherwise)."""
    if p_mask is None:
        return x
    big = 65500.0 if p_mask.dtype == torch.float16 else 1e30
    return x * (1 - p_mask) - big * p_mask


class XLMPoolerStartLogits(nn.Module):
    """SQuAD start logits: one score per position."""

    def __init__(self, config: XLMConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.emb_dim, 1)

    def forward(self, hidden_states: torch.Tensor, p_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, seq, dim) → (batch, seq)."""
        return _apply_p_mask(self.dense(hidden_states).squeeze(-1), p_mask)


class XLMPoolerEndLogits(nn.Module):
    """SQuAD end logits, conditioned on the start token's hidden state."""

    def __init__(self, config: XLMConfig) -> None:
        super().__init__()
        self.dense_0 = nn.Linear(2 * config.emb_dim, config.emb_dim)
        self.activation = nn.Tanh()
        self.LayerNorm = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.dense_1 = nn.Linear(config.emb_dim, 1)

    def forward(
        self,
        hidden_states: torch.Tensor,
        start_states: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        p_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores (batch, seq, ...) from hidden states and either start_states or start_positions (batch,)."""
        if start_positions is not None:
            slen, dim = hidden_states.shape[-2:]
            index = start_positions[:, None, None].expand(-1, 1, dim)
            start_states = hidden_states.gather(-2, index).expand(-1, slen, -1)  # (batch, seq, dim)
        elif start_states is None:
            raise ValueError("XLMPoolerEndLogits needs start_states or start_positions")
        x = self.dense_0(torch.cat([hidden_states, start_states], dim=-1))
        x = self.LayerNorm(self.activation(x))
        x = self.dense_1(x).squeeze(-1)
        return _apply_p_mask(x, p_mask)


class XLMPoolerAnswerClass(nn.Module):
    """SQuAD 2.0 answerability logit from the start token's and the CLS token's hidden states."""

    def __init__(self, config: XLMConfig) -> None:
        super().__init__()
        self.dense_0 = nn.Linear(2 * config.emb_dim, config.emb_dim)
        self.activation = nn.Tanh()
        self.dense_1 = nn.Linear(config.emb_dim, 1, bias=False)

    def forward(
        self,
        hidden_states: torch.Tensor,
        start_states: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        cls_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One logit per example (batch,); the CLS token is the last one unless cls_index is given."""
        dim = hidden_states.shape[-1]
        if start_positions is not None:
            index = start_positions[:, None, None].expand(-1, 1, dim)
            start_states = hidden_states.gather(-2, index).squeeze(-2)  # (batch, dim)
        elif start_states is None:
            raise ValueError("XLMPoolerAnswerClass needs start_states or start_positions")
        if cls_index is not None:
            index = cls_index[:, None, None].expand(-1, 1, dim)
            cls_states = hidden_states.gather(-2, index).squeeze(-2)
        else:
            cls_states = hidden_states[:, -1, :]
        x = self.activation(self.dense_0(torch.cat([start_states, cls_states], dim=-1)))
        return self.dense_1(x).squeeze(-1)


class XLMSQuADHead(nn.Module):
    """SQuAD head (after XLNet): span-start and span-end scores, beam search at inference, answerability.

    With start and end positions it returns the loss: mean of the start and end cross entropies
    (positions outside [0, seq) are ignored, as in the simple QA head), plus half the binary
    cross entropy of `is_impossible` when both it and `cls_index` are given. Otherwise it returns
    the top `start_n_top` starts, the top `end_n_top` ends for each, and the answer-class logits.
    """

    def __init__(self, config: XLMConfig) -> None:
        super().__init__()
        self.start_n_top = config.start_n_top
        self.end_n_top = config.end_n_top
        self.start_logits = XLMPoolerStartLogits(config)
        self.end_logits = XLMPoolerEndLogits(config)
        self.answer_class = XLMPoolerAnswerClass(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        cls_index: torch.Tensor | None = None,
        is_impossible: torch.Tensor | None = None,
        p_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Return {"loss"} when positions are given, else the beam outputs (see the class docstring)."""
        start_logits = self.start_logits(hidden_states, p_mask=p_mask)

        if start_positions is not None and end_positions is not None:
            start_positions, end_positions, cls_index, is_impossible = (
                x.squeeze(-1) if x is not None and x.dim() > 1 else x
                for x in (start_positions, end_positions, cls_index, is_impossible)
            )
            slen = hidden_states.shape[1]
            start_positions = start_positions.clamp(0, slen)
            end_positions = end_positions.clamp(0, slen)
            # the end scores depend on the true start; an ignored start (= slen) gathers the last token
            gather_start = start_positions.clamp(max=slen - 1)
            end_logits = self.end_logits(hidden_states, start_positions=gather_start, p_mask=p_mask)
            start_loss = F.cross_entropy(start_logits, start_positions, ignore_index=slen)
            end_loss = F.cross_entropy(end_logits, end_positions, ignore_index=slen)
            loss = (start_loss + end_loss) / 2
            if cls_index is not None and is_impossible is not None:
                cls_logits = self.answer_class(hidden_states, start_positions=gather_start, cls_index=cls_index)
                loss = loss + 0.5 * F.binary_cross_entropy_with_logits(cls_logits, is_impossible.to(cls_logits.dtype))
            return {"loss": loss}

        bs, slen, dim = hidden_states.shape
        start_probs = F.softmax(start_logits, dim=-1)  # (bs, slen)
        start_top_probs, start_top_index = torch.topk(start_probs, self.start_n_top, dim=-1)
        index = start_top_index[:, :, None].expand(-1, -1, dim)
        start_states = hidden_states.gather(-2, index)  # (bs, start_n_top, dim)
        start_states = start_states[:, None].expand(-1, slen, -1, -1)  # (bs, slen, start_n_top, dim)
        hidden_expanded = hidden_states[:, :, None].expand_as(start_states)
        end_p_mask = p_mask[..., None] if p_mask is not None else None
        end_logits = self.end_logits(hidden_expanded, start_states=start_states, p_mask=end_p_mask)
        end_probs = F.softmax(end_logits, dim=1)  # (bs, slen, start_n_top)
        end_top_probs, end_top_index = torch.topk(end_probs, self.end_n_top, dim=1)  # (bs, end_n_top, start_n_top)
        end_top_probs = end_top_probs.reshape(-1, self.start_n_top * self.end_n_top)
        end_top_index = end_top_index.reshape(-1, self.start_n_top * self.end_n_top)

        # answerability from the start-probability-weighted hidden state
        weighted_start = torch.einsum("blh,bl->bh", hidden_states, start_probs)
        cls_logits = self.answer_class(hidden_states, start_states=weighted_start, cls_index=cls_index)
        return {
            "start_top_log_probs": start_top_probs,
            "start_top_index": start_top_index,
            "end_top_log_probs": end_top_probs,
            "end_top_index": end_top_index,
            "cls_logits": cls_logits,
        }
