"""The VQ-VAE on the binarized 8x8 digits of ``models/vae_digits`` (the same data and split): a
discrete latent of L positions over a codebook of K codes, so that log p(x), the posterior and every
KL are finite sums over the K^L codes. The network written once over an array module, and its Pyro
and NumPyro model and guide. Not a ModelSpec cell model (no ``spec.py``): ``ppl_suite.vqvae`` trains
and evaluates it."""
