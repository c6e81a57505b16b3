"""Physics-motivated simulator of Pierre Auger surface-detector station data.

The thesis this project reproduces classified the primary particle (proton, helium, oxygen,
iron) of ultra-high-energy air showers from the signal of a single water-Cherenkov detector
(WCD) station.  Its CORSIKA/Offline simulations are not public, so this module generates
stand-in data with the same nine features and the same file layout.  It is a *toy*: every
ingredient is a textbook or published parametrisation, simplified, and chained together in a
way that is internally consistent.  It reproduces the qualitative mass dependence that makes
single-station classification possible (heavier primaries: shallower Xmax, more muons, older
showers at ground, faster traces) and nothing more.  Numbers from it are not Auger results.

numpy only (plus the standard library); pandas is used for CSV writing only.

Model, per shower
-----------------
* Primary mass A in {1, 4, 16, 56}; lg(E/eV) uniform in [18.5, 20]; cos^2(zenith) uniform in
  [0.25, 1] (zenith <= 60 deg, isotropic flux on a flat detector); azimuth uniform in
  [0, 2 pi).
* Depth of shower maximum Xmax: mean and width from the Auger parametrisation of
  <Xmax>(E, A) and sigma(Xmax)(E, A) (Pierre Auger Collaboration, JCAP 02 (2013) 026,
  arXiv:1301.6637), with the EPOS-LHC coefficients presented by the collaboration at ICRC 2013:
  <Xmax> = X0 + D lg(E/(E0 A)) + xi ln A + delta ln A lg(E/E0), E0 = 1e19 eV,
  sigma^2 = sigma_p^2 (1 + a ln A + b ln^2 A).  Shape: a standardised Gumbel (long tail to deep
  showers, as in the generalised-Gumbel fits of De Domenico et al., JCAP 07 (2013) 050) for
  protons, blended with a Gaussian for heavier nuclei (weight A^-1/4 on the Gumbel part);
  mean and sigma are preserved exactly.
* Muon number N_mu = N_ref A^(1-beta) (E/10 EeV)^beta, beta = 0.92 (Heitler-Matthews model:
  J. Matthews, Astropart. Phys. 22 (2005) 387), times a log-normal shower-to-shower factor of
  relative width 0.18 A^-0.3 (about 0.18 for p, 0.05 for Fe: superposition shrinks the
  fluctuations; cf. Pierre Auger Collaboration, PRL 126 (2021) 152002).  Muons are produced
  on average at X_mu = Xmax - 220 g/cm^2 (muon production depth, Pierre Auger Collaboration,
  PRD 90 (2014) 012012).
* A small log-normal factor (5 %) on the electromagnetic (EM) size.

Model, per station
------------------
* Distance r to the shower axis in the shower plane, area-weighted in [250, 2500] m
  (pdf proportional to r), and a polar angle psi in the shower plane (hidden; psi = 0 is the
  "early" side).  The station plane crosses the axis r cos(psi) sin(zenith) above the ground,
  so early stations see a younger shower (the source of the Auger rise-time asymmetry).
* Atmosphere: isothermal exponential, X_v(h) = 1030 g/cm^2 exp(-h / 8.4 km), ground at
  1400 m a.s.l. (~872 g/cm^2 vertical, Malargue).  Slant depth of the station plane
  X_st = X_v(h_plane) / cos(zenith); geometric distances along the axis follow from h(X).
* EM signal: Gaisser-Hillas longitudinal profile (T. K. Gaisser, A. M. Hillas, 15th ICRC
  (1977)) in the (L, R) form with L = 227 g/cm^2, R = 0.26 (Pierre Auger Collaboration,
  JCAP 03 (2019) 018), evaluated at the station depth X_st minus 150 sqrt(r / 1 km) g/cm^2
  (the EM signal far from the axis peaks later than the shower size, as in the "universality"
  description of ground signals), times an NKG lateral shape (K. Kamata, J. Nishimura, Prog.
  Theor. Phys. Suppl. 6 (1958) 93; K. Greisen, Prog. Cosmic Ray Phys. 3 (1956) 1),
  (r/r_M)^(s-2) (1 + r/r_M)^(s-4.5) with r_M = 95 m, normalised at 1000 m, whose age
  s = 3 X_st / (X_st + 2 Xmax) flattens the profile of old showers.  So: the further the
  station is past Xmax, the less EM signal and the flatter its lateral profile.  Normalised so
  that a vertical 10 EeV proton of average Xmax gives 35 VEM of EM signal at 1000 m (about
  the Auger S(1000) scale).  Plus an EM "halo" from muon decay equal to 15 % of the muon signal
  (cf. Valino et al., Astropart. Phys. 32 (2010) 304).  Energy is deposited through the
  tank's projected area.
* Muon signal: Greisen's muon lateral shape rho ~ (r/r0)^-0.75 (1 + r/r0)^-2.5
  (K. Greisen, Ann. Rev. Nucl. Sci. 10 (1960) 63), normalised to N_mu, with r0 = 320 m scaled
  with the square root of the distance to the muon production point (muons from farther away
  spread wider), and an effective attenuation exp(-(X_ground - X_ground,vertical) / 2000 g/cm^2)
  tuned so that the muon signal at 1000 m is roughly independent of zenith.  Muons hitting the
  tank ~ Poisson(rho A_eff(zenith)); each deposits on average (pi R^2 / A_eff) VEM (vertical
  through-going muon = 1 VEM) with a Gamma-distributed track-length spread.
* EM particles: Poisson in "quanta" of 0.08 VEM (a typical EM particle at these distances
  deposits 10-30 MeV; a VEM is about 240 MeV).
* Arrival times: a particle from a point at distance D up the axis arrives
  (sqrt(D^2 + r^2) - D)/c ~ r^2/(2cD) behind the plane front, so a source region of extent
  ~D spreads arrivals over ~ r^2 / (2c (D + r)) (the form also bounds the spread when
  D << r).  Each component's arrival times are Weibull-distributed with a scale of that
  form: muons with D = distance to the muon production depth (factor 0.4, plus a kinematic
  delay 25 ns (r/1 km)^1.5), EM particles with D = distance to Xmax (factor 0.5, plus a
  multiple-scattering delay 80 ns (r/1 km)^1.5); the halo follows the muons.  Traces are
  therefore longer far from the core, for deep (proton-like) and near-vertical showers, and
  shorter for muon-rich, old showers: the physics of the Auger rise-time analyses (Pierre
  Auger Collaboration, PRD 96 (2017) 122003, arXiv:1710.07249).  Coefficients are tuned by
  eye to give t1/2 of a few hundred ns at 1 km, not fitted to data.
* Trace: 200 bins of 25 ns (40 MHz FADC), particle counts per bin drawn multinomially from
  the Poisson totals, folded with the exponential light-collection response of the tank
  (tau = 65 ns: a lone muon has area/peak ~ 3.1 bins, as in the VEM calibration) and Gaussian
  baseline noise (0.01 VEM per bin).
* Trigger: stations whose total signal is below 3 VEM are dropped (about the Auger T2
  single-station threshold; Pierre Auger Collaboration, NIM A 798 (2015) 172).

Features (from the trace; see README.md for the full table)
---------------------------------------------------------
log10_energy (lg(E/EeV) = lg(E/eV) - 18), zenith (deg), core_distance (m), total_signal (VEM,
sum of the trace over the signal window), trace_length (bins of the signal window),
azimuth (rad, of the shower), rise_time (ns, 10 -> 50 % of the integrated signal),
fall_time (ns, 50 -> 90 %), area_over_peak (total signal / largest bin, in bins; cf. the AoP
of Auger neutrino searches, e.g. PRD 91 (2015) 092008).

Presets
-------
``physical``: 1-3 triggered stations per shower, every shower new, shower quantities are
Monte Carlo truth; train and test come from disjoint showers.  (Unchanged since 1.0.0: the same
seed gives the same files.)

``thesis`` (1.1.0): the stations of a shower library, as the thesis's data were (CORSIKA
showers put through the detector simulation), split into train and test at random station by
station, as the thesis did.  Each choice and its source:

* Library grid: lg(E/eV) in {18.5, 19, 19.5, 20} (half-decade steps) and zenith in
  {0, 12, 25, 36, 45, 53, 60} deg, the fixed angles of Auger's CORSIKA libraries; the same
  number of showers per grid point and primary (a library is produced that way); azimuth
  uniform.  Many showers of every primary share each (energy, zenith) point.
* Throws: each library shower is thrown ``Library.throws`` times (1 here) with a random core
  on the 1.5 km triangular array (NIM A 798 (2015) 172; CORSIKA's AUGERHIT option places
  the core at random relative to that grid: J. Oehlschlaeger, D. Heck, FZKA report).  The
  number of stations within [250, 2500] m of the axis is Poisson with the array's density
  projected on the shower plane (0.51 / km^2 / cos(zenith)); the triggered ones (3 VEM, as
  above) form the event: on average 6-9 stations at 3 EeV, 10-20 at 30-100 EeV, as in Auger
  data.  So the number of stations per shower follows from energy, zenith and the array.
* Reconstruction: every event carries its own reconstructed energy and direction, shared by
  its stations (the features ``log10_energy``, ``zenith``, ``azimuth`` are reconstructed
  values here, truth in ``physical``): sigma(E)/E = 16 % at 3 EeV, 12 % from 10 EeV (the SD
  energy resolution, NIM A 798 (2015) 172), log-normal; direction tilted by a 2D Gaussian
  with a 68 % radius of 1 deg (SD angular resolution for events of 6 or more stations,
  C. Bonifazi for the Pierre Auger Collaboration, Nucl. Phys. B Proc. Suppl. 190 (2009) 20,
  arXiv:0901.3138), so near-vertical events get an essentially random azimuth.
* Station sample: each triggered station enters the table with probability
  ``Library.keep_fraction`` (0.6): a fixed number of stations per primary drawn from a larger
  library's output.  This is the one calibrated number (see below); the others are fixed by
  the sources above.

A test station then usually has siblings of its own event in the training set with the
exact same (log10_energy, zenith, azimuth), so a flexible model can recognise the event and
copy its label (shower-identity leakage); where no sibling is in training, or the model cannot
single the event out among ~12,000, only the station's physics is left.  Calibration (seed
1234, full size, README.md): with the thesis's best XGBoost parameters
(``final_params/cosmic-xgboost-thesis-final.json``) the random split gives 0.885 (the thesis:
0.885) and a split grouped by shower 0.35, near the ``physical`` ceiling.  More stations kept
per event (keep_fraction 0.7) give 0.92, fewer (0.55) 0.86; reusing each shower 5 times at
keep_fraction 0.5 gives 0.886 but 0.33 grouped (fewer distinct showers to learn from).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SIMULATOR_VERSION = "1.1.0"

#: Class names (file stems) in label order; value = mass number A.
PRIMARIES: dict[str, int] = {"proton": 1, "helium": 4, "oxygen": 16, "iron": 56}
CLASS_NAMES: tuple[str, ...] = tuple(PRIMARIES)
MASS_NUMBERS: tuple[int, ...] = tuple(PRIMARIES.values())

#: CSV columns, in order. ``shower_id`` is a group key, ``label`` the target (0..3).
COLUMNS: tuple[str, ...] = (
    "shower_id",
    "log10_energy",
    "zenith",
    "core_distance",
    "total_signal",
    "trace_length",
    "azimuth",
    "rise_time",
    "fall_time",
    "area_over_peak",
    "label",
)
#: The nine station features (everything but the group key and the label).
FEATURES: tuple[str, ...] = COLUMNS[1:-1]

UNITS: dict[str, str] = {
    "shower_id": "opaque integer (group key, not a feature)",
    "log10_energy": "lg(E/EeV)",
    "zenith": "deg",
    "core_distance": "m",
    "total_signal": "VEM",
    "trace_length": "25 ns bins",
    "azimuth": "rad",
    "rise_time": "ns",
    "fall_time": "ns",
    "area_over_peak": "25 ns bins",
    "label": "0=proton 1=helium 2=oxygen 3=iron",
}

# --- sampling ranges -------------------------------------------------------------------------
LG_E_EV_RANGE = (18.5, 20.0)
COS2_ZENITH_RANGE = (0.25, 1.0)
R_RANGE_M = (250.0, 2500.0)

# --- Xmax: Auger parametrisation, EPOS-LHC coefficients (g/cm^2) -----------------------------
XMAX_X0, XMAX_D, XMAX_XI, XMAX_DELTA = 806.1, 55.6, 0.15, 0.83
XMAX_P = (3284.0, -260.5, 132.4)  # sigma_p^2 = p0 + p1 lg(E/E0) + p2 lg^2(E/E0)
XMAX_A = (-0.462, -0.0008)  # a = a0 + a1 lg(E/E0)
XMAX_B = 0.059
XMAX_CLIP = (450.0, 1300.0)

# --- muons -----------------------------------------------------------------------------------
MUON_BETA = 0.92
MUON_SIGMA_P = 0.18  # relative shower-to-shower fluctuation for protons
MUON_SIGMA_MASS_SLOPE = 0.3  # sigma(A) = MUON_SIGMA_P * A^-0.3
MUON_N_REF = 6.0e7  # muons at ground, 10 EeV proton (sets S_mu(1000 m) ~ 18 VEM)
MUON_PRODUCTION_OFFSET = 220.0  # Xmax - X^mu_max, g/cm^2
MUON_R0_M = 320.0  # Greisen muon LDF scale at the reference distance
MUON_R0_DREF_M = 4000.0
MUON_R0_POWER = 0.5
MUON_ATTENUATION = 2000.0  # g/cm^2, effective
MUON_TRACK_CV = (0.25, 0.25)  # cv = c0 + c1 sin(zenith)

# --- electromagnetic component ---------------------------------------------------------------
GH_L, GH_R = 227.0, 0.26
MOLIERE_RADIUS_M = 95.0
EM_REF_VEM = 35.0  # S_em at 1000 m, vertical 10 EeV proton with Xmax = <Xmax> (calibration)
EM_DX_SHIFT = 150.0  # g/cm^2: EM at 1000 m peaks ~150 g/cm^2 after Xmax (scales as sqrt(r))
EM_SIGMA = 0.05
EM_HALO_FRACTION = 0.15
EM_QUANTUM_VEM = 0.08

# --- atmosphere and detector -----------------------------------------------------------------
X_SEA = 1030.0  # g/cm^2
H_SCALE_M = 8400.0
H_GROUND_M = 1400.0
X_GROUND_VERTICAL = X_SEA * math.exp(-H_GROUND_M / H_SCALE_M)
C_M_PER_NS = 0.299792458
TANK_RADIUS_M, TANK_HEIGHT_M = 1.8, 1.2
TANK_TOP_AREA = math.pi * TANK_RADIUS_M**2

BIN_NS = 25.0
N_BINS = 200
PRETRIGGER_BINS = 10
RESPONSE_TAU_NS = 65.0
RESPONSE_TAIL_BINS = 30  # the response falls by 0.68 per bin: 30 bins ~ 1e-5
NOISE_VEM = 0.01
WINDOW_THRESHOLD_VEM = 0.05  # 5 sigma of the baseline noise
TRIGGER_VEM = 3.0

# --- timing ----------------------------------------------------------------------------------
TIME_MU_FACTOR = 0.4
TIME_MU_KIN_NS = 25.0  # * (r / 1000 m)^1.5: kinematic (low-energy muon) delays
TIME_MU_MIN_NS = 10.0
TIME_MU_SHAPE = 1.4
TIME_EM_FACTOR = 0.5
TIME_EM_SCATTER_NS = 80.0  # * (r / 1000 m)^1.5: multiple-scattering delays of EM particles
TIME_EM_SHAPE = 1.3


@dataclass(frozen=True)
class Library:
    """A shower library thrown on the array, with reconstructed shower quantities.

    ``lg_e_ev`` and ``zenith_deg`` are the library's grids (every primary gets the same number
    of showers per grid point).  Each shower is thrown ``throws`` times at new core positions
    on the array (``ARRAY_SPACING_M``); a throw's triggered stations share its reconstructed
    energy and direction (resolutions: ``RECO_*``), and each is kept in the table with
    probability ``keep_fraction``.
    """

    lg_e_ev: tuple[float, ...]
    zenith_deg: tuple[float, ...]
    throws: int
    keep_fraction: float


@dataclass(frozen=True)
class Preset:
    name: str
    stations_per_shower: tuple[int, int] | None  # inclusive range; None: set by the library
    split: str  # "shower" (grouped) or "station" (random across stations)
    description: str
    library: Library | None = None  # None: every shower is new, quantities are Monte Carlo truth


THESIS_LIBRARY = Library(
    lg_e_ev=(18.5, 19.0, 19.5, 20.0),
    zenith_deg=(0.0, 12.0, 25.0, 36.0, 45.0, 53.0, 60.0),
    throws=1,
    keep_fraction=0.6,
)

# --- array and reconstruction (library presets) ---------------------------------------------
ARRAY_SPACING_M = 1500.0  # triangular grid: 2 / (sqrt(3) spacing^2) stations per area
RECO_ENERGY_LG = (18.5, 19.0)  # sigma(E)/E interpolated in lg(E/eV) between these points
RECO_ENERGY_REL = (0.16, 0.12)
RECO_ANGLE_DEG = 1.0  # angular resolution (68 % containment)

PRESETS: dict[str, Preset] = {
    "physical": Preset(
        "physical",
        (1, 3),
        "shower",
        "1-3 stations per shower; train/test from disjoint showers (no leakage).",
    ),
    "thesis": Preset(
        "thesis",
        None,
        "station",
        "shower library (grid of energies and zenith angles) thrown on the array, energy and "
        "direction reconstructed per event; random station-level train/test split (leakage).",
        THESIS_LIBRARY,
    ),
}


# =============================================================================================
# Shower level
# =============================================================================================
def xmax_moments(lg_e_ev: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of Xmax (g/cm^2), Auger/EPOS-LHC parametrisation."""
    lg_e_ev = np.asarray(lg_e_ev, dtype=float)
    ln_a = np.log(np.asarray(mass, dtype=float))
    x = lg_e_ev - 19.0
    mean = XMAX_X0 + XMAX_D * (x - ln_a / math.log(10)) + ln_a * (XMAX_XI + XMAX_DELTA * x)
    sigma_p2 = XMAX_P[0] + XMAX_P[1] * x + XMAX_P[2] * x**2
    a = XMAX_A[0] + XMAX_A[1] * x
    var = sigma_p2 * (1.0 + a * ln_a + XMAX_B * ln_a**2)
    return mean, np.sqrt(var)


def _sample_xmax(lg_e_ev: np.ndarray, mass: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mean, sigma = xmax_moments(lg_e_ev, mass)
    n = mean.shape[0]
    u = rng.random(n)
    gumbel = (-np.log(-np.log(np.clip(u, 1e-12, 1 - 1e-12))) - np.euler_gamma) / (
        math.pi / math.sqrt(6.0)
    )
    gauss = rng.standard_normal(n)
    w = np.asarray(mass, dtype=float) ** -0.25
    z = (w * gumbel + (1.0 - w) * gauss) / np.sqrt(w**2 + (1.0 - w) ** 2)
    return np.clip(mean + sigma * z, *XMAX_CLIP)


def _lognormal_unit_mean(sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s = np.sqrt(np.log1p(np.asarray(sigma, dtype=float) ** 2))
    return np.exp(s * rng.standard_normal(s.shape[0]) - 0.5 * s**2)


def _sample_showers(
    mass: int,
    n: int,
    rng: np.random.Generator,
    lg_e: np.ndarray | None = None,
    zenith: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Showers of one primary; energy and zenith (rad) are drawn unless given (a library)."""
    masses = np.full(n, float(mass))
    if lg_e is None:
        lg_e = rng.uniform(*LG_E_EV_RANGE, n)
    if zenith is None:
        zenith = np.arccos(np.sqrt(rng.uniform(*COS2_ZENITH_RANGE, n)))
    azimuth = rng.uniform(0.0, 2.0 * math.pi, n)
    xmax = _sample_xmax(lg_e, masses, rng)
    f_mu = _lognormal_unit_mean(MUON_SIGMA_P * masses**-MUON_SIGMA_MASS_SLOPE, rng)
    f_em = _lognormal_unit_mean(np.full(n, EM_SIGMA), rng)
    return {
        "mass": masses,
        "lg_e_ev": lg_e,
        "zenith": zenith,
        "azimuth": azimuth,
        "xmax": xmax,
        "f_mu": f_mu,
        "f_em": f_em,
    }


# =============================================================================================
# Station level: expectations
# =============================================================================================
def _height_of_vertical_depth(xv: np.ndarray) -> np.ndarray:
    return H_SCALE_M * np.log(X_SEA / xv)


def _distance_to_plane(
    x_slant: np.ndarray, cos_z: np.ndarray, h_plane: np.ndarray, d_min: float = 50.0
) -> np.ndarray:
    """Distance (m) along the axis from slant depth ``x_slant`` down to the station plane."""
    xv = np.clip(x_slant * cos_z, 1.0, None)
    return np.maximum((_height_of_vertical_depth(xv) - h_plane) / cos_z, d_min)


def _delay_spread_ns(d: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Spread of arrival delays (ns) of particles from a source region at distance ``d``.

    A source at distance D along the axis delays particles at axis distance r by
    (sqrt(D^2 + r^2) - D)/c ~ r^2/(2cD) behind the plane front; a source region extended
    over ~D spreads them by about that much.  r^2 / (2c (D + r)) interpolates between that
    (D >> r) and the bounded r / 2c of a source close to the ground (D << r).
    """
    return r**2 / (2.0 * C_M_PER_NS * (d + r))


def _nkg_shape(r: np.ndarray, age: np.ndarray) -> np.ndarray:
    """NKG lateral shape (r/r_M)^(s-2) (1 + r/r_M)^(s-4.5), normalised to 1 at 1000 m."""
    x = r / MOLIERE_RADIUS_M
    x0 = 1000.0 / MOLIERE_RADIUS_M
    return np.exp(
        (age - 2.0) * np.log(x / x0) + (age - 4.5) * np.log1p(x) - (age - 4.5) * np.log1p(x0)
    )


def _gaisser_hillas(x: np.ndarray, xmax: np.ndarray) -> np.ndarray:
    """Gaisser-Hillas profile in (L, R) form, normalised to 1 at Xmax."""
    t = 1.0 + GH_R * (x - xmax) / GH_L
    t = np.clip(t, 1e-9, None)
    return np.exp(np.log(t) / GH_R**2 - (x - xmax) / (GH_R * GH_L))


_MUON_LDF_NORM = 2.0 * math.pi * math.exp(2 * math.lgamma(1.25) - math.lgamma(2.5))


def _muon_density(r: np.ndarray, r0: np.ndarray) -> np.ndarray:
    """Greisen muon lateral shape per m^2, normalised to one muon."""
    x = r / r0
    return x**-0.75 * (1.0 + x) ** -2.5 / (_MUON_LDF_NORM * r0**2)


@functools.cache
def _em_norm() -> float:
    """EM normalisation (VEM per m^2 of tank area) from ``EM_REF_VEM``."""
    xmax = xmax_moments(np.array([19.0]), np.array([1.0]))[0]
    ref = _gaisser_hillas(np.array([X_GROUND_VERTICAL - EM_DX_SHIFT]), xmax) * TANK_TOP_AREA
    return float(EM_REF_VEM / ref[0])


def _tank_area(zenith: np.ndarray) -> np.ndarray:
    """Projected area (m^2) of the cylindrical tank seen from the shower direction."""
    return TANK_TOP_AREA * np.cos(zenith) + 2.0 * TANK_RADIUS_M * TANK_HEIGHT_M * np.sin(zenith)


def _station_model(
    mass: np.ndarray,
    lg_e_ev: np.ndarray,
    zenith: np.ndarray,
    r: np.ndarray,
    psi: np.ndarray,
    xmax: np.ndarray,
    f_mu: np.ndarray,
    f_em: np.ndarray,
) -> dict[str, np.ndarray]:
    """Expected signals and time scales at each station (no randomness)."""
    cos_z, sin_z = np.cos(zenith), np.sin(zenith)
    e10 = 10.0 ** (lg_e_ev - 19.0)  # E / 10 EeV
    h_plane = H_GROUND_M + r * np.cos(psi) * sin_z
    x_station = X_SEA * np.exp(-h_plane / H_SCALE_M) / cos_z
    x_ground = X_GROUND_VERTICAL / cos_z

    # --- muons
    x_mu = np.clip(xmax - MUON_PRODUCTION_OFFSET, 50.0, None)
    d_mu = _distance_to_plane(x_mu, cos_z, h_plane)
    r0 = MUON_R0_M * (d_mu / MUON_R0_DREF_M) ** MUON_R0_POWER
    n_mu_total = (
        MUON_N_REF
        * mass ** (1.0 - MUON_BETA)
        * e10**MUON_BETA
        * f_mu
        * np.exp(-(x_ground - X_GROUND_VERTICAL) / MUON_ATTENUATION)
    )
    rho_mu = n_mu_total * _muon_density(r, r0)
    area = _tank_area(zenith)
    lam_mu = rho_mu * area  # expected muons through the tank
    vem_per_mu = TANK_TOP_AREA / area
    s_mu = lam_mu * vem_per_mu

    # --- electromagnetic
    age = np.clip(3.0 * x_station / (x_station + 2.0 * xmax), 0.5, 2.0)
    shift = EM_DX_SHIFT * np.sqrt(r / 1000.0)
    s_em = _em_norm() * e10 * f_em * _gaisser_hillas(x_station - shift, xmax)
    s_em = s_em * _nkg_shape(r, age) * area
    s_halo = EM_HALO_FRACTION * s_mu

    # --- time scales (Weibull scale, ns): spread of geometric delays from the source region
    d_xmax = _distance_to_plane(np.minimum(xmax, x_station - 1.0), cos_z, h_plane)
    lam_t_mu = (
        TIME_MU_FACTOR * _delay_spread_ns(d_mu, r)
        + TIME_MU_KIN_NS * (r / 1000.0) ** 1.5
        + TIME_MU_MIN_NS
    )
    lam_t_em = (
        TIME_EM_FACTOR * _delay_spread_ns(d_xmax, r) + TIME_EM_SCATTER_NS * (r / 1000.0) ** 1.5
    )
    lam_t_em = np.maximum(lam_t_em, lam_t_mu)

    return {
        "zenith": zenith,
        "x_station": x_station,
        "age": age,
        "lam_mu": lam_mu,
        "vem_per_mu": vem_per_mu,
        "s_mu_expected": s_mu,
        "s_em_expected": s_em,
        "s_halo_expected": s_halo,
        "lam_t_mu": lam_t_mu,
        "lam_t_em": lam_t_em,
    }


def _draw_counts(model: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Poisson particle counts and the resulting (noise-free) station signal."""
    n_mu = rng.poisson(model["lam_mu"])
    cv = MUON_TRACK_CV[0] + MUON_TRACK_CV[1] * np.sin(model["zenith"])
    k = cv**2
    mu_vem = model["vem_per_mu"] * rng.gamma(n_mu / k, k)
    n_em = rng.poisson((model["s_em_expected"] + model["s_halo_expected"]) / EM_QUANTUM_VEM)
    return {
        "n_mu": n_mu,
        "mu_vem": mu_vem,
        "n_em": n_em,
        "em_vem": n_em * EM_QUANTUM_VEM,
        "signal": mu_vem + n_em * EM_QUANTUM_VEM,
    }


# =============================================================================================
# Station level: traces and features
# =============================================================================================
def _weibull_bin_probs(
    scale: np.ndarray, shape: float, phase: np.ndarray, n_bins: int
) -> np.ndarray:
    """(n, n_bins + 1) arrival probabilities per bin; the last column is the overflow."""
    # float32 is plenty for the CDF and about twice as fast; probabilities are float64
    t = ((np.arange(n_bins + 1) - PRETRIGGER_BINS) * BIN_NS).astype(np.float32)[None, :]
    t = t - phase.astype(np.float32)[:, None]
    np.maximum(t, 0.0, out=t)
    t /= scale.astype(np.float32)[:, None]
    np.power(t, np.float32(shape), out=t)
    np.negative(t, out=t)
    cdf = np.expm1(t, out=t)
    np.negative(cdf, out=cdf)
    probs = np.empty((scale.shape[0], n_bins + 1))
    probs[:, :n_bins] = np.diff(cdf, axis=1)
    probs[:, n_bins] = np.clip(1.0 - cdf[:, -1], 0.0, 1.0)
    return probs


def _bins_needed(model: dict[str, np.ndarray]) -> int:
    """Bins that hold all but ~1e-5 of the widest arrival-time distribution, plus the tail of
    the detector response; traces beyond that carry only baseline noise."""
    tail = -math.log(1e-5)
    t_max = max(
        float(np.max(model["lam_t_mu"], initial=0.0)) * tail ** (1.0 / TIME_MU_SHAPE),
        float(np.max(model["lam_t_em"], initial=0.0)) * tail ** (1.0 / TIME_EM_SHAPE),
    )
    return min(N_BINS, PRETRIGGER_BINS + 1 + math.ceil(t_max / BIN_NS) + RESPONSE_TAIL_BINS)


def _make_traces(
    model: dict[str, np.ndarray],
    counts: dict[str, np.ndarray],
    rng: np.random.Generator,
    n_bins: int = N_BINS,
) -> np.ndarray:
    """Simulated FADC traces (n, n_bins) in VEM per 25 ns bin."""
    n = counts["n_mu"].shape[0]
    phase = rng.uniform(0.0, BIN_NS, n)
    p_mu = _weibull_bin_probs(model["lam_t_mu"], TIME_MU_SHAPE, phase, n_bins)
    p_em_main = _weibull_bin_probs(model["lam_t_em"], TIME_EM_SHAPE, phase, n_bins)
    s_em, s_halo = model["s_em_expected"], model["s_halo_expected"]
    w = (s_em / np.maximum(s_em + s_halo, 1e-300))[:, None]
    p_em = w * p_em_main + (1.0 - w) * p_mu
    p_mu /= p_mu.sum(axis=1, keepdims=True)
    p_em /= p_em.sum(axis=1, keepdims=True)
    mu_counts = rng.multinomial(counts["n_mu"], p_mu)[:, :n_bins]
    em_counts = rng.multinomial(counts["n_em"], p_em)[:, :n_bins]
    per_mu = np.where(counts["n_mu"] > 0, counts["mu_vem"] / np.maximum(counts["n_mu"], 1), 0.0)
    x = mu_counts * per_mu[:, None] + em_counts * EM_QUANTUM_VEM
    # exponential light-collection response of the tank (normalised IIR filter)
    a = math.exp(-BIN_NS / RESPONSE_TAU_NS)
    y = np.empty_like(x)
    acc = np.zeros(n)
    for b in range(n_bins):
        acc = a * acc + (1.0 - a) * x[:, b]
        y[:, b] = acc
    y += NOISE_VEM * rng.standard_normal(y.shape)
    return y


def _quantile_time(cum: np.ndarray, total: np.ndarray, q: float) -> np.ndarray:
    level = q * total
    idx = np.argmax(cum >= level[:, None], axis=1)
    rows = np.arange(cum.shape[0])
    hi = cum[rows, idx]
    lo = np.where(idx > 0, cum[rows, np.maximum(idx - 1, 0)], 0.0)
    frac = np.where(hi > lo, (level - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    return (idx + frac) * BIN_NS


def trace_features(traces: np.ndarray) -> dict[str, np.ndarray]:
    """Station features from traces (n, n_bins) in VEM per 25 ns bin.

    The signal window runs from the first to the last bin above ``WINDOW_THRESHOLD_VEM``.
    """
    traces = np.atleast_2d(traces)
    nb = traces.shape[1]
    above = traces > WINDOW_THRESHOLD_VEM
    has = above.any(axis=1)
    start = np.argmax(above, axis=1)
    stop = nb - 1 - np.argmax(above[:, ::-1], axis=1)
    idx = np.arange(nb)[None, :]
    in_window = (idx >= start[:, None]) & (idx <= stop[:, None]) & has[:, None]
    win = np.where(in_window, traces, 0.0)
    total = win.sum(axis=1)
    peak = win.max(axis=1)
    cum = np.cumsum(np.clip(win, 0.0, None), axis=1)
    total_pos = cum[:, -1]
    t10 = _quantile_time(cum, total_pos, 0.10)
    t50 = _quantile_time(cum, total_pos, 0.50)
    t90 = _quantile_time(cum, total_pos, 0.90)
    return {
        "total_signal": total,
        "trace_length": np.where(has, stop - start + 1, 0),
        "rise_time": t50 - t10,
        "fall_time": t90 - t50,
        "area_over_peak": np.where(peak > 0, total / np.where(peak > 0, peak, 1.0), 0.0),
    }


def _sample_station_geometry(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = R_RANGE_M
    r = np.sqrt(rng.uniform(lo**2, hi**2, n))
    psi = rng.uniform(0.0, 2.0 * math.pi, n)
    return r, psi


def _simulate_stations(
    masses: np.ndarray,
    lg_e_ev: np.ndarray,
    zenith_deg: np.ndarray,
    r: np.ndarray,
    rng: np.random.Generator,
    *,
    psi: np.ndarray | None = None,
    xmax: np.ndarray | None = None,
    f_mu: np.ndarray | None = None,
    f_em: np.ndarray | None = None,
    return_traces: bool = False,
    chunk: int = 4096,
) -> dict[str, np.ndarray]:
    """Simulate stations for given per-station inputs; no trigger cut is applied.

    ``masses``, ``lg_e_ev`` (lg(E/eV)), ``zenith_deg`` and ``r`` (m) are broadcast to a common
    length.  Hidden shower quantities (``xmax``, muon and EM fluctuation factors) and the
    station's polar angle ``psi`` are drawn (as for independent showers) unless given.
    Returns the trace features plus truth: ``xmax``, ``mu_signal``, ``em_signal`` (VEM, noise
    free), ``muon_fraction``, ``n_muons``, ``psi``, ``triggered`` and optionally ``traces``.
    """
    masses, lg_e_ev, zenith_deg, r = (
        np.asarray(a, dtype=float) for a in np.broadcast_arrays(masses, lg_e_ev, zenith_deg, r)
    )
    n = masses.shape[0]
    zenith = np.radians(zenith_deg)
    if psi is None:
        psi = rng.uniform(0.0, 2.0 * math.pi, n)
    if xmax is None:
        xmax = _sample_xmax(lg_e_ev, masses, rng)
    if f_mu is None:
        f_mu = _lognormal_unit_mean(MUON_SIGMA_P * masses**-MUON_SIGMA_MASS_SLOPE, rng)
    if f_em is None:
        f_em = _lognormal_unit_mean(np.full(n, EM_SIGMA), rng)
    model = _station_model(masses, lg_e_ev, zenith, r, psi, xmax, f_mu, f_em)
    counts = _draw_counts(model, rng)
    out = _traces_and_features(model, counts, rng, return_traces=return_traces, chunk=chunk)
    out.update(
        {
            "xmax": xmax,
            "psi": psi,
            "mu_signal": counts["mu_vem"],
            "em_signal": counts["em_vem"],
            "n_muons": counts["n_mu"],
            "muon_fraction": counts["mu_vem"] / np.maximum(counts["signal"], 1e-12),
        }
    )
    out["triggered"] = out["total_signal"] >= TRIGGER_VEM
    return out


def _take(d: dict[str, np.ndarray], sel: Any) -> dict[str, np.ndarray]:
    return {k: v[sel] for k, v in d.items()}


def _traces_and_features(
    model: dict[str, np.ndarray],
    counts: dict[str, np.ndarray],
    rng: np.random.Generator,
    *,
    return_traces: bool,
    chunk: int,
) -> dict[str, np.ndarray]:
    """Traces and features in chunks.  Stations are processed in order of their time spread so
    that each chunk simulates only the bins it needs (a speed-up; results are returned in the
    input order)."""
    n = counts["n_mu"].shape[0]
    order = np.argsort(np.maximum(model["lam_t_mu"], model["lam_t_em"]), kind="stable")
    names = tuple(trace_features(np.zeros((1, 2))))
    out = {k: np.zeros(n) for k in names}
    out["trace_length"] = np.zeros(n, dtype=np.int64)
    traces = np.zeros((n, N_BINS), np.float32) if return_traces else None
    for lo in range(0, n, chunk):
        sel = order[lo : lo + chunk]
        m, c = _take(model, sel), _take(counts, sel)
        tr = _make_traces(m, c, rng, _bins_needed(m))
        for k, v in trace_features(tr).items():
            out[k][sel] = v
        if traces is not None:
            traces[sel, : tr.shape[1]] = tr
            pad = N_BINS - tr.shape[1]
            if pad:
                traces[sel, tr.shape[1] :] = NOISE_VEM * rng.standard_normal((sel.size, pad))
    if traces is not None:
        out["traces"] = traces
    return out


# =============================================================================================
# Dataset generation
# =============================================================================================
def _reconstruct(units: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Add a throw's reconstructed energy and direction (``obs_*``) to ``units``, in place.

    Energy: log-normal with sigma(E)/E from ``RECO_ENERGY_*``.  Direction: the true axis tilted
    by a 2D Gaussian offset (sigma per component = resolution / 1.515, the 68 % radius of a 2D
    Gaussian), so a near-vertical axis gets an essentially random azimuth, as in data.
    """
    lg_e, theta, phi = units["lg_e_ev"], units["zenith"], units["azimuth"]
    n = lg_e.shape[0]
    rel = np.interp(lg_e, RECO_ENERGY_LG, RECO_ENERGY_REL)
    units["obs_lg_e_ev"] = lg_e + np.log10(_lognormal_unit_mean(rel, rng))
    sigma = math.radians(RECO_ANGLE_DEG) / math.sqrt(-2.0 * math.log(1.0 - 0.68))
    a, b = sigma * rng.standard_normal((2, n))
    st, ct, sp, cp = np.sin(theta), np.cos(theta), np.sin(phi), np.cos(phi)
    # axis + a * d(axis)/d(theta) + b * d(axis)/d(phi) / sin(theta), then normalised
    v = np.stack([st * cp + a * ct * cp - b * sp, st * sp + a * ct * sp + b * cp, ct - a * st])
    v /= np.linalg.norm(v, axis=0)
    units["obs_zenith"] = np.arccos(np.clip(v[2], -1.0, 1.0))
    units["obs_azimuth"] = np.mod(np.arctan2(v[1], v[0]), 2.0 * math.pi)


def _batch_units(
    mass: int, n_needed: int, preset: Preset, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, int]:
    """One batch of the units stations are thrown for: (units, stations wanted per unit, shower
    index of each unit, number of showers).  A unit is a shower, or for a library preset one
    throw of a library shower (its stations are then set by the array: wanted = -1)."""
    lib = preset.library
    if lib is None:
        assert preset.stations_per_shower is not None
        lo_k, hi_k = preset.stations_per_shower
        n_sh = math.ceil(n_needed / (0.9 * 0.5 * (lo_k + hi_k))) + 2
        sh = _sample_showers(mass, n_sh, rng)
        return sh, rng.integers(lo_k, hi_k + 1, n_sh), np.arange(n_sh), n_sh
    # about 11 triggered stations per throw on average over the grid (module docstring); a
    # batch that falls short is followed by another
    n_sh = math.ceil(n_needed / (0.9 * lib.throws * 12.0 * lib.keep_fraction)) + 2
    n_z = len(lib.zenith_deg)
    # the same number of showers per grid point (and primary), in random order
    cell = rng.permutation(np.arange(n_sh) % (len(lib.lg_e_ev) * n_z))
    lg_e = np.asarray(lib.lg_e_ev)[cell // n_z]
    zenith = np.radians(np.asarray(lib.zenith_deg))[cell % n_z]
    sh = _sample_showers(mass, n_sh, rng, lg_e=lg_e, zenith=zenith)
    shower_of = np.repeat(np.arange(n_sh), lib.throws)
    units = _take(sh, shower_of)
    _reconstruct(units, rng)
    return units, np.full(shower_of.size, -1), shower_of, n_sh


def _candidates(
    units: dict[str, np.ndarray], owner: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Candidate stations of the given units (area-weighted positions), with their expected
    and drawn particle counts; ``trig``: the trigger on the counts."""
    r, psi = _sample_station_geometry(owner.size, rng)
    g = _take(units, owner)
    model = _station_model(
        g["mass"], g["lg_e_ev"], g["zenith"], r, psi, g["xmax"], g["f_mu"], g["f_em"]
    )
    counts = _draw_counts(model, rng)
    return {
        "unit": owner,
        "r": r,
        "psi": psi,
        "trig": counts["signal"] >= TRIGGER_VEM,
        **{f"sh_{k}": v for k, v in g.items()},
        **{f"m_{k}": v for k, v in model.items()},
        **{f"c_{k}": v for k, v in counts.items()},
    }


def _fill_units(
    units: dict[str, np.ndarray], pending: np.ndarray, rng: np.random.Generator, max_rounds: int
) -> list[dict[str, np.ndarray]]:
    """Throw candidates until each unit has ``pending`` triggered stations (or rounds run out)."""
    kept: list[dict[str, np.ndarray]] = []
    for rnd in range(max_rounds):
        need = np.flatnonzero(pending > 0)
        if need.size == 0:
            break
        m = np.ceil(pending[need] * (2.0 * 2**rnd)).astype(int)
        owner = np.repeat(need, m)
        cand = _candidates(units, owner, rng)
        trig = cand.pop("trig")
        # keep the first `pending` triggered candidates of each unit
        cum = np.cumsum(trig)
        first = np.repeat(np.cumsum(m) - m, m)
        rank = cum - np.where(first > 0, cum[np.maximum(first - 1, 0)], 0)
        keep = trig & (rank <= pending[owner])
        np.subtract.at(pending, owner[keep], 1)
        kept.append(_take(cand, np.flatnonzero(keep)))
    return kept


def _array_units(
    units: dict[str, np.ndarray], keep_fraction: float, rng: np.random.Generator
) -> list[dict[str, np.ndarray]]:
    """The stations of the array around each throw's core: the number of stations within
    ``R_RANGE_M`` of the axis is Poisson with the array's density projected on the shower
    plane; triggered ones are kept with probability ``keep_fraction``."""
    lo, hi = R_RANGE_M
    density = 2.0 / (math.sqrt(3.0) * ARRAY_SPACING_M**2)
    mean = density * math.pi * (hi**2 - lo**2) / np.cos(units["zenith"])
    owner = np.repeat(np.arange(mean.size), rng.poisson(mean))
    cand = _candidates(units, owner, rng)
    keep = cand.pop("trig") & (rng.random(owner.size) < keep_fraction)
    return [_take(cand, np.flatnonzero(keep))]


def _generate_class(
    mass: int,
    n_stations: int,
    preset: Preset,
    rng: np.random.Generator,
    *,
    return_traces: bool,
    max_rounds: int = 12,
) -> dict[str, np.ndarray]:
    """Triggered stations of one primary, grouped by shower (local shower index ``shower``).

    Showers (or throws of library showers) are drawn in batches.  Each gets a target number of
    triggered stations (uniform in the preset's range); candidate positions are thrown
    (area-weighted) until the target is met or ``max_rounds`` rounds have passed (low-energy
    inclined showers may fall short).  Traces are built only for stations that pass the
    trigger on the particle counts; the final cut is on the trace's total signal.
    """
    batches: list[dict[str, np.ndarray]] = []
    n_have = 0
    shower_offset = 0
    event_offset = 0
    while n_have < n_stations:
        sh, pending, shower_of, n_sh = _batch_units(mass, n_stations - n_have, preset, rng)
        if preset.library is None:
            kept = _fill_units(sh, pending, rng, max_rounds)
        else:
            kept = _array_units(sh, preset.library.keep_fraction, rng)
        st = {k: np.concatenate([p[k] for p in kept]) for k in kept[0]}
        st = _take(st, np.argsort(st["unit"], kind="stable"))
        model = {k[2:]: v for k, v in st.items() if k.startswith("m_")}
        counts = {k[2:]: v for k, v in st.items() if k.startswith("c_")}
        feats = _traces_and_features(model, counts, rng, return_traces=return_traces, chunk=4096)
        idx = np.flatnonzero(feats["total_signal"] >= TRIGGER_VEM)[: n_stations - n_have]
        # features: the reconstructed shower quantities where the preset has them, else truth
        obs = "sh_obs_" if "sh_obs_lg_e_ev" in st else "sh_"
        res = {
            "shower": shower_of[st["unit"][idx]] + shower_offset,
            "event": st["unit"][idx] + event_offset,
            "log10_energy": st[obs + "lg_e_ev"][idx] - 18.0,
            "zenith": np.degrees(st[obs + "zenith"][idx]),
            "core_distance": st["r"][idx],
            "azimuth": st[obs + "azimuth"][idx],
            "lg_e_ev_true": st["sh_lg_e_ev"][idx],
            "zenith_true": np.degrees(st["sh_zenith"][idx]),
            "xmax": st["sh_xmax"][idx],
            "psi": st["psi"][idx],
            "mu_signal": st["c_mu_vem"][idx],
            "em_signal": st["c_em_vem"][idx],
            "n_muons": st["c_n_mu"][idx],
        }
        res.update({k: v[idx] for k, v in feats.items()})
        batches.append(res)
        n_have += idx.size
        shower_offset += n_sh
        event_offset += shower_of.size
    out = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    # renumber showers and events densely (0..n-1)
    _, out["shower"] = np.unique(out["shower"], return_inverse=True)
    _, out["event"] = np.unique(out["event"], return_inverse=True)
    return out


_TRUTH_COLUMNS = (
    "shower_id",
    "event",
    "lg_e_ev_true",
    "zenith_true",
    "xmax",
    "mu_signal",
    "em_signal",
    "n_muons",
    "psi",
    "label",
)


def _to_frames(parts: list[dict[str, np.ndarray]]) -> tuple[Any, Any]:
    import pandas as pd

    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "traces"}
    df = pd.DataFrame({c: cat[c] for c in COLUMNS})
    df["shower_id"] = df["shower_id"].astype(np.int64)
    df["trace_length"] = df["trace_length"].astype(np.int64)
    df["label"] = df["label"].astype(np.int64)
    truth = pd.DataFrame({c: cat[c] for c in _TRUTH_COLUMNS})
    return df, truth


def simulate(
    preset: str | Preset = "physical",
    *,
    seed: int = 1234,
    n_train_per_class: int = 16000,
    n_test_per_class: int = 4000,
    return_traces: bool = False,
) -> dict[str, Any]:
    """Simulate a train/test data set.

    Returns a dict with ``train`` and ``test`` (pandas DataFrames with ``COLUMNS``, classes
    concatenated in label order), ``truth`` (``{"train": df, "test": df}`` with hidden
    quantities per station: event, true lg(E/eV) and zenith, Xmax, muon and EM signal, muon
    count, psi), ``meta`` (counts, preset, seed) and, if ``return_traces``, ``traces``
    (``{"train": array, "test": array}``, float32, shape (n_stations, 200), VEM per 25 ns bin).
    ``preset`` is a name from ``PRESETS`` or a ``Preset`` (e.g. a library variant for a study).
    """
    if isinstance(preset, Preset):
        p, preset = preset, preset.name
    elif preset in PRESETS:
        p = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    rng = np.random.default_rng(seed)
    splits: dict[str, list[dict[str, np.ndarray]]] = {"train": [], "test": []}
    n_showers = n_events = 0
    for label, mass in enumerate(MASS_NUMBERS):
        if p.split == "shower":
            for split, n in (("train", n_train_per_class), ("test", n_test_per_class)):
                res = _generate_class(mass, n, p, rng, return_traces=return_traces)
                res["shower"] = res["shower"] + n_showers
                n_showers = int(res["shower"].max()) + 1 if res["shower"].size else n_showers
                res["event"] = res["shower"]
                res["label"] = np.full(res["shower"].size, label)
                splits[split].append(res)
        else:
            res = _generate_class(
                mass, n_train_per_class + n_test_per_class, p, rng, return_traces=return_traces
            )
            res["shower"] = res["shower"] + n_showers
            n_showers = int(res["shower"].max()) + 1 if res["shower"].size else n_showers
            res["event"] = res["event"] + n_events
            n_events = int(res["event"].max()) + 1 if res["event"].size else n_events
            res["label"] = np.full(res["shower"].size, label)
            perm = rng.permutation(res["shower"].size)
            splits["train"].append(_take(res, perm[:n_train_per_class]))
            splits["test"].append(_take(res, perm[n_train_per_class:]))
    # opaque shower ids: a seeded permutation, so ids carry no class or order information
    id_map = rng.permutation(n_showers) + 100000
    for parts in splits.values():
        for res in parts:
            res["shower_id"] = id_map[res["shower"]]
    out: dict[str, Any] = {"truth": {}}
    for split, parts in splits.items():
        out[split], out["truth"][split] = _to_frames(parts)
    if return_traces:
        out["traces"] = {s: np.concatenate([r["traces"] for r in splits[s]]) for s in splits}
    train_ids = set(out["train"]["shower_id"].tolist())
    test_ids = set(out["test"]["shower_id"].tolist())
    out["meta"] = {
        "simulator": "examples/cosmic_rays/simulate.py",
        "simulator_version": SIMULATOR_VERSION,
        "preset": preset,
        "preset_description": p.description,
        "stations_per_shower": list(p.stations_per_shower or ()),
        "split": p.split,
        "seed": seed,
        "n_train_per_class": n_train_per_class,
        "n_test_per_class": n_test_per_class,
        "n_showers": {
            "train": len(train_ids),
            "test": len(test_ids),
            "shared_train_test": len(train_ids & test_ids),
        },
        "classes": {name: i for i, name in enumerate(CLASS_NAMES)},
        "mass_numbers": dict(PRIMARIES),
        "columns": list(COLUMNS),
        "units": UNITS,
        "trigger_vem": TRIGGER_VEM,
        "bin_ns": BIN_NS,
    }
    if p.library is not None:
        lib = p.library
        out["meta"]["library"] = {
            "lg_e_ev": list(lib.lg_e_ev),
            "zenith_deg": list(lib.zenith_deg),
            "throws": lib.throws,
            "keep_fraction": lib.keep_fraction,
            "array_spacing_m": ARRAY_SPACING_M,
            "energy_resolution": dict(zip(map(str, RECO_ENERGY_LG), RECO_ENERGY_REL, strict=True)),
            "angular_resolution_deg": RECO_ANGLE_DEG,
        }
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_dataset(
    out_dir: str | Path, preset: str = "physical", seed: int = 1234, scale: float = 1.0
) -> Path:
    """Write ``out_dir/<preset>/{train,test}/<primary>.csv`` and ``metadata.json``.

    ``scale`` multiplies the per-class sizes (16000 train, 4000 test).  Returns the preset
    directory.  Output is byte-identical for the same (preset, seed, scale).
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    n_train = max(1, round(16000 * scale))
    n_test = max(1, round(4000 * scale))
    data = simulate(preset, seed=seed, n_train_per_class=n_train, n_test_per_class=n_test)
    root = Path(out_dir) / preset
    files: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for split in ("train", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        df = data[split]
        counts[split] = {}
        for label, name in enumerate(CLASS_NAMES):
            part = df[df["label"] == label]
            path = root / split / f"{name}.csv"
            part.to_csv(path, index=False, float_format="%.7g", lineterminator="\n")
            files[f"{split}/{name}.csv"] = _sha256(path)
            counts[split][name] = len(part)
    fingerprint = hashlib.sha256(
        "\n".join(f"{k} {v}" for k, v in sorted(files.items())).encode()
    ).hexdigest()
    meta = dict(data["meta"])
    meta.update(
        {
            "scale": scale,
            "counts": counts,
            "files_sha256": files,
            "fingerprint": fingerprint,
            "data_version": f"cosmic-sim-{SIMULATOR_VERSION}-{preset}-seed{seed}-scale{scale:g}",
        }
    )
    (root / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return root


def read_split(preset_dir: str | Path, split: str = "train") -> Any:
    """Read ``<preset_dir>/<split>/*.csv`` back into one DataFrame (classes in label order)."""
    import pandas as pd

    root = Path(preset_dir) / split
    return pd.concat([pd.read_csv(root / f"{name}.csv") for name in CLASS_NAMES], ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="physical")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "data"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    root = write_dataset(args.out, args.preset, args.seed, args.scale)
    meta = json.loads((root / "metadata.json").read_text())
    n_train = sum(meta["counts"]["train"].values())
    n_test = sum(meta["counts"]["test"].values())
    sh = meta["n_showers"]
    print(
        f"{args.preset}: wrote {n_train} train / {n_test} test stations "
        f"({sh['train']} / {sh['test']} showers, {sh['shared_train_test']} shared) to {root} "
        f"in {time.perf_counter() - t0:.1f} s; fingerprint {meta['fingerprint'][:12]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
