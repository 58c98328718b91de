"""The ground floor: helpers every other part of faceres uses and that import nothing above them."""
