"""What the suite needs beyond the lab's own components (shipyard.lab); never imported by the package."""
