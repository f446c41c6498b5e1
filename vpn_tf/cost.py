"""Analytic parameter and arithmetic counts of a VPN config, from the architecture's formulas.

These are written from the paper's equations, not read off the Keras model, so tests can check the model against
them and benchmarks can compute achieved FLOP/s. Notation: c = hidden, w = 2c, L = ConvLSTM channels, C = colour
channels, K = logits per dimension, D = conditioning vector size, T = top channels.
"""

from __future__ import annotations

from vpn_tf.config import VPNConfig


def _conv(k: int, cin: int, cout: int, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def _block_params(cfg: VPNConfig) -> int:
    c, w, d = cfg.hidden, 2 * cfg.hidden, cfg.condition_dim
    cond = d * w + w if d else 0
    if cfg.block == "rmb":
        # 1x1 w->c, two MUs each one 3x3 c->4c convolution (W1..W4 fused), 1x1 c->w.
        return _conv(1, w, c) + 2 * _conv(3, c, 4 * c) + _conv(1, c, w) + cond
    return _conv(1, w, c) + _conv(3, c, c) + _conv(1, c, w) + cond


def parameter_count(cfg: VPNConfig) -> dict[str, int]:
    """Trainable parameters per part: encoder, conv_lstm, decoder, total."""
    c, w, L, C, K, T = cfg.hidden, 2 * cfg.hidden, cfg.lstm_channels, cfg.channels, cfg.num_classes, cfg.top_channels
    k = cfg.lstm_kernel_size
    encoder = _conv(3, C, w) + cfg.encoder_blocks * _block_params(cfg)
    lstm = k * k * w * 4 * L + k * k * L * 4 * L + 4 * L
    head = _conv(1, w, T) + _conv(1, T, C * K)
    decoder = cfg.decoder_blocks * _block_params(cfg) + head
    if cfg.model == "vpn":
        decoder += _conv(cfg.first_kernel_size, C, w) + _context_params(cfg)
    else:
        decoder += _conv(1, cfg.context_channels, w)
    del c
    return {"encoder": encoder, "conv_lstm": lstm, "decoder": decoder, "total": encoder + lstm + decoder}


def _context_convs(cfg: VPNConfig) -> list[tuple[int, int, int]]:
    """(kernel, in, out) of each convolution of the VPN decoder's context projection (`PixelCNNDecoder`)."""
    w, L = 2 * cfg.hidden, cfg.context_channels
    convs = [(cfg.context_kernel_size, L, w), (1, w, (cfg.decoder_blocks + 1) * w)]
    return convs + ([(1, w, cfg.top_channels)] if cfg.context_wiring == "every_layer" else [])


def _context_params(cfg: VPNConfig) -> int:
    return sum(_conv(*shape) for shape in _context_convs(cfg))


def _block_macs(cfg: VPNConfig) -> int:
    c, w = cfg.hidden, 2 * cfg.hidden
    if cfg.block == "rmb":
        return w * c + 2 * 9 * c * 4 * c + c * w
    return w * c + 9 * c * c + c * w


def forward_macs_per_frame(cfg: VPNConfig) -> dict[str, int]:
    """Multiply-adds of the teacher-forced forward pass per frame, counting convolutions only (dense kernels, as
    executed: masked kernels are computed in full and multiplied by zeros).

    encoder: one frame through the encoder; conv_lstm: one ConvLSTM step; decoder: one predicted frame's decoder.
    A training sequence of T frames with P predicted costs (T - 1) * (encoder + conv_lstm) + P * decoder.
    """
    hw = cfg.height * cfg.width
    w, L, C, K, T = 2 * cfg.hidden, cfg.lstm_channels, cfg.channels, cfg.num_classes, cfg.top_channels
    k = cfg.lstm_kernel_size
    encoder = hw * (9 * C * w + cfg.encoder_blocks * _block_macs(cfg))
    lstm = hw * k * k * (w + L) * 4 * L
    decoder = hw * (cfg.decoder_blocks * _block_macs(cfg) + w * T + T * C * K)
    if cfg.model == "vpn":
        context = sum(k * k * cin * cout for k, cin, cout in _context_convs(cfg))
        decoder += hw * (cfg.first_kernel_size**2 * C * w + context)
    else:
        decoder += hw * cfg.context_channels * w
    return {"encoder": encoder, "conv_lstm": lstm, "decoder": decoder}


def training_flops_per_sequence(cfg: VPNConfig, num_frames: int | None = None) -> int:
    """FLOPs (2 per multiply-add) of forward + backward (x3 the forward) for one training sequence (the decoder runs
    on the frames after the context)."""
    t = num_frames or cfg.num_frames
    m = forward_macs_per_frame(cfg)
    forward = (t - 1) * (m["encoder"] + m["conv_lstm"]) + (t - cfg.context_frames) * m["decoder"]
    return 3 * 2 * forward


def main(argv=None):
    """Prints a markdown table of every preset's parameter count and forward multiply-adds per frame."""
    import argparse

    from vpn_tf.presets import get_config, preset_names

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("presets", nargs="*", help="presets to list (default: all)")
    args = parser.parse_args(argv)
    print("| preset | parameters | encoder | ConvLSTM | decoder | G multiply-adds / frame (enc + LSTM + dec) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.presets or preset_names():
        cfg = get_config(name)
        p = parameter_count(cfg)
        m = forward_macs_per_frame(cfg)
        print(
            f"| `{name}` | {p['total']:,} | {p['encoder']:,} | {p['conv_lstm']:,} | {p['decoder']:,} "
            f"| {sum(m.values()) / 1e9:.2f} |"
        )


if __name__ == "__main__":
    main()
