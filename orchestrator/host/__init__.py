"""The machine: the one module that talks to Docker, cgroups, CPU topology and frequency, noise, CI facts."""
