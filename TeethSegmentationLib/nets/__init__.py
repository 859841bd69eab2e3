"""The networks: the light 3D U-Net, the model file, intensity normalisation and the torch device."""
