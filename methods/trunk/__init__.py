"""The network every method trains and the probe reads: AlexNet with taps conv1..conv5, and its heads."""
