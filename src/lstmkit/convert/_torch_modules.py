"""``torch.nn`` modules that do what lstmkit's containers do, for :func:`lstmkit.convert.torch_layout.to_torch_module`.

Imported only when a module is converted (it imports torch). Each has the same children under the
same names as its lstmkit twin, so the two ``state_dict()``'s keys are equal.
"""

from __future__ import annotations

import torch


class LastStep(torch.nn.Module):
    """lstmkit's ``LastStep``: ``x[-1]``, or ``x[:, -1]`` when ``batch_first`` (and x has 3 axes)."""

    def __init__(self, batch_first: bool):
        super().__init__()
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1] if self.batch_first and x.dim() == 3 else x[-1]


class Sequential(torch.nn.Sequential):
    """lstmkit's ``Sequential``: a recurrent layer's ``(output, state)`` passes its output on alone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self:
            x = module(x)
            if isinstance(module, torch.nn.RNNBase):
                x = x[0]
        return x


class LanguageModel(torch.nn.Module):
    """lstmkit's ``LanguageModel``: (L, N) token ids -> (L, N, vocab) logits and the LSTM's final (h, c)."""

    def __init__(self, embedding, input_dropout, lstm, output_dropout, decoder):
        super().__init__()
        self.embedding, self.input_dropout, self.lstm = embedding, input_dropout, lstm
        self.output_dropout, self.decoder = output_dropout, decoder

    def forward(self, tokens: torch.Tensor, state=None):
        output, state = self.lstm(self.input_dropout(self.embedding(tokens)), state)
        return self.decoder(self.output_dropout(output)), state
