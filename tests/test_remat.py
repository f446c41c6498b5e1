"""Rematerialisation (`remat`): the same function and the same gradients, with the blocks' activations recomputed."""

import numpy as np
import pytest
import tensorflow as tf

from vpn_tf import build_model, get_config


@pytest.mark.parametrize("preset, block", [("tiny", "rmb"), ("tiny_rgb", "relu"), ("tiny_rgb", "rmb")])
def test_remat_gives_identical_loss_and_gradients(preset, block):
    rng = np.random.default_rng(0)
    config = get_config(preset, block=block)
    inputs = {"video": rng.integers(0, 256, (2, config.num_frames, *config.frame_shape)).astype(np.uint8)}
    if config.conditional:
        inputs["actions"] = rng.normal(size=(2, config.num_frames, config.action_dim)).astype(np.float32)
        inputs["states"] = rng.normal(size=(2, config.num_frames, config.state_dim)).astype(np.float32)
    plain, remat = build_model(config), build_model(config.replace(remat=True))
    remat.set_weights(plain.get_weights())
    assert remat.encoder.remat and remat.decoder.remat and not plain.encoder.remat

    def loss_and_grads(model):
        @tf.function
        def fn():
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(model.log_prob(**inputs, training=True))
            return loss, tape.gradient(loss, model.trainable_variables)

        return fn()

    (la, ga), (lb, gb) = loss_and_grads(plain), loss_and_grads(remat)
    assert float(la) == pytest.approx(float(lb), rel=1e-6)
    assert len(ga) == len(gb) and all(g is not None for g in gb)
    for a, b, v in zip(ga, gb, plain.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7, err_msg=v.path)

    # The recomputation really happens: the backward graph of the remat model runs the blocks' convolutions again.
    def conv_ops(model):
        fn = tf.function(lambda: tf.gradients(-tf.reduce_mean(model.log_prob(**inputs)), model.trainable_variables))
        ops = fn.get_concrete_function().graph.get_operations()
        return sum(op.type == "Conv2D" for op in ops)

    assert conv_ops(remat) > conv_ops(plain)


def test_remat_is_a_training_field():
    config = get_config("tiny", remat=True)
    assert config.to_dict()["remat"] is True
    from vpn_tf.config import ARCHITECTURE_FIELDS

    assert "remat" not in ARCHITECTURE_FIELDS  # a checkpoint trained without it resumes with it, and vice versa
