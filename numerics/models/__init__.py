"""Physical models: pair potentials, velocity distributions, linear stability."""
from numerics.models.potentials import (  # noqa: F401
    HMF,
    DiracComb,
    FourierPotential,
    Potential,
    RingModel,
)
from numerics.models.distributions import (  # noqa: F401
    Gaussian,
    GeneralizedGaussian,
    Shifted,
    Tabulated,
    VelocityDistribution,
)
from numerics.models.stability import (  # noqa: F401
    Q,
    check_stable,
    collective_indicator,
    critical_Q,
    dielectric,
    statically_dressed,
)
