"""Population curves of brain development, as functions of developmental age in years.

Developmental age is chronological age times a subject's tempo. The curves and the literature
behind them are tabulated in docs/synthetic.md:

* Brain growth: tissue volume is about a third of adult volume at birth, ~72 % at 1 year and
  ~83 % at 2 years, then rises slowly to a plateau in adolescence (Dekaban & Sadowsky 1978;
  Knickmeyer et al. 2008; Lenroot et al. 2007).
* Tissue trajectories: cortical grey matter peaks in mid-childhood and thins through adolescence,
  white matter grows into the twenties, ventricles enlarge slowly (Giedd et al. 1999;
  Lenroot et al. 2007).
* Myelination contrast: on T1, white matter is darker than grey matter in the first months,
  isointense around 6-12 months and brighter from about 2 years; contrast keeps maturing slowly
  afterwards (Barkovich et al. 1988; Barkovich 2005; Paus et al. 2001; Dubois et al. 2014).
"""

from __future__ import annotations

import numpy as np

# Oldest age the curves are calibrated for; cohorts may not ask for older subjects.
MAX_SUPPORTED_AGE = 30.0


def relative_brain_volume(age: np.ndarray | float) -> np.ndarray | float:
    """Brain tissue (GM + WM) volume relative to the adult template at a developmental age.

    0.33 at birth, 0.72 at 1 y, 0.83 at 2 y, 0.93 at 6 y, 0.98 at 12 y, plateau after.

    Args:
        age: Developmental age in years.

    Returns:
        Volume fraction of the adult template brain.
    """
    age = np.asarray(age, dtype=float)
    return 1.0 - 0.47 * np.exp(-age / 0.7) - 0.2 * np.exp(-age / 5.5)


def white_matter_share(age: np.ndarray | float) -> np.ndarray | float:
    """White-matter share of brain tissue volume: 0.27 at birth, 0.37 at 10 y, 0.41 at 20 y.

    Args:
        age: Developmental age in years.

    Returns:
        WM / (GM + WM).
    """
    age = np.asarray(age, dtype=float)
    return 0.27 + 0.16 * (1.0 - np.exp(-age / 10.0))


def ventricle_volume_factor(age: np.ndarray | float) -> np.ndarray | float:
    """Ventricular volume relative to the template's, before whole-brain scaling (slow enlargement).

    Args:
        age: Developmental age in years.

    Returns:
        0.75 at birth rising linearly by 0.0125 per year.
    """
    return 0.75 + 0.0125 * np.asarray(age, dtype=float)


def myelination(age: np.ndarray | float) -> np.ndarray | float:
    """Maturity of white-matter T1 signal, 0 (newborn) to 1 (adult).

    A Hill curve (half-maturity at 1.1 years, exponent 3) drives the infant contrast inversion;
    a slow exponential tail (time constant 6 y) keeps contrast maturing through childhood.

    Args:
        age: Developmental age in years.

    Returns:
        Maturity in [0, 1].
    """
    age = np.maximum(np.asarray(age, dtype=float), 1e-6)
    return 0.85 / (1.0 + (1.1 / age) ** 3) + 0.15 * (1.0 - np.exp(-age / 6.0))


def white_grey_ratio(age: np.ndarray | float, grey: float) -> np.ndarray | float:
    """T1 white/grey intensity ratio: 0.75 at birth, 1 at 9-12 months, adult 1/grey.

    Args:
        age: Developmental age in years.
        grey: Adult grey intensity relative to adult white matter at the site.

    Returns:
        White-matter intensity divided by grey-matter intensity.
    """
    return 0.75 + (1.0 / grey - 0.75) * myelination(age)
