"""Seeded simulations of the gate decisions: false alarms under no change, power at the stated
MDE, and Holm's family-wise control. Vectorised: one set of bootstrap weights serves all
simulated data sets of a size (the weights do not depend on the data)."""
import numpy as np
import pytest
from scipy import stats as sps

from replaygate.compare import stats as st
from replaygate.compare.gates import excess_p_values, holm_adjust

ALPHA = 0.025


def _mc_bound(p, trials):
    """Nominal level plus three Monte-Carlo standard errors."""
    return p + 3 * np.sqrt(p * (1 - p) / trials)


def _p_beyond_decrease(base, cand, tau=0.0, resamples=2000, seed=0):
    """One-sided p of 'the mean fell by more than tau' for every simulated data set (columns)."""
    n, d = base.shape
    reps = st.weighted_means(st.CaseWeights(n, resamples, seed), cand - base)
    return np.array([excess_p_values(-reps[:, j], tau, n)[0] for j in range(d)])


@pytest.mark.parametrize("n", [40, 300, 800])
def test_score_gate_false_alarm_at_most_nominal_without_repeats(n):
    rng = np.random.default_rng(n)
    d = 2000
    case = rng.beta(0.6, 0.6, (n, 1))  # skewed, bimodal per-case difficulty
    base = np.clip(case + rng.normal(0, 0.25, (n, d)), 0, 1)
    cand = np.clip(case + rng.normal(0, 0.25, (n, d)), 0, 1)
    rate = np.mean(_p_beyond_decrease(base, cand) <= ALPHA)
    assert rate <= _mc_bound(ALPHA, d)
    assert rate > 0.005  # the gate is not simply asleep


def test_score_gate_with_repeats_false_alarm_at_most_nominal():
    rng = np.random.default_rng(12)
    n, r, d = 80, 3, 2000
    case = rng.beta(2, 2, (n, 1, 1))
    # per-case means of 3 noisy repeats, compared across cases (cluster by case)
    base = np.clip(case + rng.normal(0, 0.3, (n, d, r)), 0, 1).mean(axis=2)
    cand = np.clip(case + rng.normal(0, 0.3, (n, d, r)), 0, 1).mean(axis=2)
    rate = np.mean(_p_beyond_decrease(base, cand) <= ALPHA)
    assert rate <= _mc_bound(ALPHA, d)


def test_pass_fail_gate_with_repeats_false_alarm_at_most_nominal():
    rng = np.random.default_rng(11)
    n, r, d = 120, 3, 2000
    p_case = rng.beta(2, 1, (n, 1))  # per-case pass probability
    base = (rng.random((n, d, r)) < p_case[..., None]).mean(axis=2)
    cand = (rng.random((n, d, r)) < p_case[..., None]).mean(axis=2)
    rate = np.mean(_p_beyond_decrease(base, cand) <= ALPHA)
    assert rate <= _mc_bound(ALPHA, d)


@pytest.mark.parametrize("n,repeats", [(300, 1), (150, 3)])
def test_latency_quantile_gate_false_alarm_at_most_nominal(n, repeats):
    rng = np.random.default_rng(n + repeats)
    trials, q = 300, 0.9
    w = st.CaseWeights(n, 2000, seed=3)
    case = np.repeat(np.arange(n), repeats)
    fails = 0
    for _ in range(trials):
        speed = rng.lognormal(6.5, 0.5, n)[case]  # per-case length drives both sides
        base = speed * rng.lognormal(0, 0.3, case.size)
        cand = speed * rng.lognormal(0, 0.3, case.size)
        rb = st.weighted_quantile_reps(w, base, case, [q])[:, 0]
        rc = st.weighted_quantile_reps(w, cand, case, [q])[:, 0]
        p_beyond, _ = excess_p_values(rc / rb - 1.0, 0.0, None)  # max_increase "0%"
        fails += p_beyond <= ALPHA
    assert fails / trials <= _mc_bound(ALPHA, trials)


def test_power_at_the_stated_mde_is_80_percent():
    rng = np.random.default_rng(5)
    n, d = 200, 1500
    sd = 1.0
    # the MDE the gate states from one data set (single gate: no Holm adjustment)
    pilot = rng.normal(0, sd, n)
    reps = st.weighted_means(st.CaseWeights(n, 10_000, 1), pilot)[:, 0]
    mde = st.mde_normal(float(reps.std()), ALPHA)
    assert mde == pytest.approx((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * sd / np.sqrt(n), rel=0.05)
    diff = rng.normal(-mde, sd, (n, d))  # the candidate is worse by exactly the MDE
    power = np.mean(_p_beyond_decrease(np.zeros_like(diff), diff) <= ALPHA)
    assert 0.75 <= power <= 0.85


def test_power_of_the_pass_fail_gate_at_its_mde_by_exact_enumeration():
    n, noise = 300, 0.04
    mde = st.mde_paired_proportion(noise, n, ALPHA)
    power = st.paired_fail_probability(n, noise / 2, noise / 2 + mde, 0.0, ALPHA)
    assert 0.75 <= power <= 0.87


def test_holm_keeps_the_family_wise_false_alarm_rate_over_five_gates():
    rng = np.random.default_rng(8)
    n, d, m = 100, 1500, 5
    diffs = rng.normal(0, 1, (n, d * m))
    p = _p_beyond_decrease(np.zeros_like(diffs), diffs).reshape(d, m)
    raw_fwer = np.mean((p <= ALPHA).any(axis=1))
    holm_fwer = np.mean([(np.array(holm_adjust(list(row))) <= ALPHA).any() for row in p])
    assert raw_fwer > 0.08  # without a correction five gates raise ~5x the false alarms
    assert holm_fwer <= _mc_bound(ALPHA, d)


def test_holm_adjusted_values_textbook():
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_large_n_cyclic_poisson_bootstrap_keeps_the_level_and_the_power():
    # n above EXACT_MAX_N uses the cyclic-shift Poisson weights: same checks as the classic path
    # (800 cases in the score test above are on this path too)
    rng = np.random.default_rng(21)
    n, d = 5000, 1500
    assert n > st.EXACT_MAX_N
    noise = rng.standard_t(4, (n, d))  # heavy tails
    p_null = _p_beyond_decrease(np.zeros_like(noise), noise, resamples=4000, seed=2)
    assert np.mean(p_null <= ALPHA) <= _mc_bound(ALPHA, d)
    se = noise[:, 0].std() / np.sqrt(n)
    mde = st.mde_normal(se, ALPHA)
    shifted = noise - mde
    power = np.mean(_p_beyond_decrease(np.zeros_like(shifted), shifted, resamples=4000, seed=2) <= ALPHA)
    assert 0.74 <= power <= 0.86
