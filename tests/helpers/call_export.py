"""Fresh process: load an export, call its signatures by keyword with inputs from an .npz, save outputs to .npz."""

import sys

import numpy as np
import tensorflow as tf

export_dir, inputs_path, out_path = sys.argv[1:4]
report_xla = "--report_xla" in sys.argv[4:]
inputs = dict(np.load(inputs_path))
loaded = tf.saved_model.load(export_dir)
out = {}
sample_kw = {k[len("sample/") :]: tf.constant(v) for k, v in inputs.items() if k.startswith("sample/")}
log_prob_kw = {k[len("log_prob/") :]: tf.constant(v) for k, v in inputs.items() if k.startswith("log_prob/")}
out["frames"] = loaded.signatures["sample"](**sample_kw)["frames"].numpy()
out["default_frames"] = loaded.signatures["serving_default"](**sample_kw)["frames"].numpy()
for k, v in loaded.signatures["log_prob"](**log_prob_kw).items():
    out[k] = v.numpy()
np.savez(out_path, **out)
if report_xla:
    # Functions of the loaded signature's graph that carry XLA's must-compile mark (what runs compiled).
    graph = loaded.signatures["sample"].graph
    library = graph.as_graph_def().library
    marked = [f.signature.name for f in library.function if f.attr["_XlaMustCompile"].b]
    print(f"xla_marked_functions_loaded={len(marked)}")
