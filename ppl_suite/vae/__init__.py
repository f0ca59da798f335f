"""The VAE study: training the digits VAE in Pyro, NumPyro and by hand (``training``), then its
evidence by AIS, IWAE and BDMC and the inference-gap decomposition on test images."""
