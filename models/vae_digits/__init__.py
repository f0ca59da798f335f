"""The VAE on binarized 8x8 handwritten digits: data, the network written once over an array module,
and its Pyro and NumPyro model and guide. Not a ModelSpec cell model (it has no ``spec.py``, so the
registry's discovery passes it by): ``ppl_suite.vae`` trains and evaluates it."""
