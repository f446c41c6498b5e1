"""The random-number algorithm every stateless draw names (data, binarisation, sampling noise keys).

TensorFlow's default "auto_select" may pick another algorithm under XLA or on a GPU, which would change the data and
the samples across devices; naming one keeps them identical everywhere.
"""

ALG = "philox"
