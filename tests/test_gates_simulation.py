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
    """One-sided p of 'the mean fell by more than tau' for every simulated data set (columns),
    from the bootstrap-t replicates the gates decide on."""
    n, d = base.shape
    reps = st.paired_mean_reps(st.CaseWeights(n, resamples, seed), base, cand)
    return np.array([r.diff.p_less(-tau) for r in reps])


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


def _p_rate_drop(base, cand, r, tau=0.0):
    """One-sided p of 'the pass rate fell by more than tau' for each simulated data set
    (columns of per-case rates with r samples a case): the effective-count score test."""
    rs = np.full(base.shape[0], r)
    out = []
    for j in range(base.shape[1]):
        e = st.effective_counts(base[:, j], cand[:, j], rs, rs)
        out.append(sps.norm.cdf(st.tango_z(e.gains, e.losses, e.n, -tau, st.CONTINUITY)))
    return np.array(out)


def test_pass_fail_gate_with_repeats_false_alarm_at_most_nominal():
    rng = np.random.default_rng(11)
    n, r, d = 120, 3, 2000
    p_case = rng.beta(2, 1, (n, 1))  # per-case pass probability
    base = (rng.random((n, d, r)) < p_case[..., None]).mean(axis=2)
    cand = (rng.random((n, d, r)) < p_case[..., None]).mean(axis=2)
    rate = np.mean(_p_rate_drop(base, cand, r) <= ALPHA)
    assert rate <= _mc_bound(ALPHA, d)
    assert rate > 0.005


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
    reps = st.paired_mean_reps(st.CaseWeights(n, 10_000, 1), np.zeros(n), pilot)[0]
    mde = st.mde_normal(reps.diff.se, ALPHA)
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
    n, d = 5000, 1000
    assert n > st.EXACT_MAX_N
    noise = rng.standard_t(4, (n, d))  # heavy tails
    p_null = _p_beyond_decrease(np.zeros_like(noise), noise, resamples=4000, seed=2)
    assert np.mean(p_null <= ALPHA) <= _mc_bound(ALPHA, d)
    se = noise[:, 0].std() / np.sqrt(n)
    mde = st.mde_normal(se, ALPHA)
    shifted = noise - mde
    power = np.mean(_p_beyond_decrease(np.zeros_like(shifted), shifted, resamples=4000, seed=2) <= ALPHA)
    assert 0.74 <= power <= 0.86


# ----------------------------------------------------------------------------- audit (issue 11)

def _rare_rates(rng, n, r, d, p, concentration):
    """Per-case rates of r samples for d data sets: per-case probabilities ~ Beta with mean p
    (clustered: some cases fail more often than others)."""
    a = p * concentration
    p_case = rng.beta(a, concentration - a, (n, d))
    return (rng.random((n, d, r)) < p_case[..., None]).mean(axis=2)


@pytest.mark.parametrize("n,r,p", [(30, 2, 0.01), (200, 3, 0.01), (200, 3, 0.05)])
def test_rate_bound_with_repeats_near_zero_false_pass_at_most_nominal(n, r, p):
    # errors.rate max p, noninferior, at a true error rate of exactly p: a pass is false
    rng = np.random.default_rng(int(n * r / p))
    d = 4000
    rates = _rare_rates(rng, n, r, d, p, 2.0)
    reps = np.full(n, float(r))
    new = np.empty(d)
    for j in range(d):
        deff = st.design_effect(rates[:, j], reps)
        n_eff = n * r / deff
        new[j] = st.binom_p_less(rates[:, j].mean() * n_eff, n_eff, p)
    new_rate = np.mean(new <= ALPHA)
    # before: the expanded-percentile bootstrap of the per-case rates (zero width at 0 events)
    boot = st.weighted_means(st.CaseWeights(n, 2000, 1), rates)
    old = np.array([st.bootstrap_p_greater(-(boot[:, j] - p), 0.0, n) for j in range(d)])
    old_rate = np.mean(old <= ALPHA)
    print(f"errors.rate max {p} noninferior, n={n} x {r}: false pass {old_rate:.3f} before, {new_rate:.4f} now")
    assert new_rate <= _mc_bound(ALPHA, d)
    if p < 0.05:
        assert old_rate > 0.1  # what the audit found: a clean resample "shows" a rate below 1%


@pytest.mark.parametrize("n,r,p", [(50, 2, 0.02), (300, 3, 0.01), (120, 3, 0.5)])
def test_rate_change_with_repeats_false_alarm_at_most_nominal(n, r, p):
    rng = np.random.default_rng(int(n * r * 10 * (1 + p)))
    d = 3000
    a = p * 2.0
    p_case = rng.beta(a, 2.0 - a, (n, 1))
    base = (rng.random((n, d, r)) < p_case[..., None]).mean(axis=2)
    cand = (rng.random((n, d, r)) < p_case[..., None]).mean(axis=2)
    # errors.rate max_increase 0 (significant): a fail is a false alarm
    rate = np.mean(_p_rate_drop(cand, base, r) <= ALPHA)
    print(f"rate change with repeats n={n} x {r}, p={p}: false alarm {rate:.4f}")
    assert rate <= _mc_bound(ALPHA, d)


def _skewed_false_alarm(n, gen, d, seed, resamples=1000):
    """Share of data sets whose paired differences have mean 0 but a long tail on the side the
    gate does not look at (a max_increase 0 gate fails when the interval lies above 0): the
    bootstrap-t the gates use, and the expanded percentile interval used before."""
    rng = np.random.default_rng(seed)
    diff = gen(rng, (n, d))
    w = st.CaseWeights(n, resamples, seed + 1)
    reps = st.paired_mean_reps(w, np.full((n, d), 1000.0), 1000.0 + diff)
    new = np.mean([r.diff.p_greater(0.0) <= ALPHA for r in reps])
    old_reps = st.weighted_means(w, diff)
    old = np.mean([excess_p_values(old_reps[:, j], 0.0, n)[0] <= ALPHA for j in range(d)])
    return old, new


_EXP = lambda rng, shape: 1.0 - rng.exponential(1.0, shape)  # noqa: E731  (a rare large drop)
_LOGN = lambda rng, shape: np.exp(0.5) - rng.lognormal(0.0, 1.0, shape)  # noqa: E731


@pytest.mark.parametrize("n", [20, 200])
def test_mean_gate_under_skew_false_alarm(n):
    old, new = _skewed_false_alarm(n, _EXP, 2000, n)
    print(f"exponential differences n={n}: false alarm {old:.4f} before (percentile), {new:.4f} now (bootstrap-t)")
    assert new < old
    # nominal 0.025; the Monte-Carlo error of 2000 data sets x 1000 resamples is about 0.004
    assert new <= (0.045 if n < 50 else 0.036)


@pytest.mark.slow
@pytest.mark.parametrize("n,d", [(10, 2000), (50, 2000), (1000, 500)])
def test_mean_gate_under_skew_false_alarm_grid(n, d):
    old, new = _skewed_false_alarm(n, _EXP, d, n + 7)
    lo, ln = _skewed_false_alarm(n, _LOGN, d, n + 8)
    print(f"n={n}: exponential {old:.4f} -> {new:.4f}; lognormal {lo:.4f} -> {ln:.4f}")
    assert new <= old + 0.005 and ln <= lo + 0.005
    assert new <= {10: 0.07, 50: 0.04, 1000: 0.045}[n]


@pytest.mark.slow
@pytest.mark.parametrize("n,d", [(50, 2000), (200, 2000), (1000, 500)])
def test_noninferior_latency_gate_with_spikes_false_pass(n, d):
    # latency.mean max_increase "10%" noninferior; the candidate is faster on most calls but 3%
    # of its calls take +20 s, so its true mean is exactly 10% above the baseline's: a pass is false
    rng = np.random.default_rng(n)
    tau = 0.10
    mean_b = 1000 * np.exp(0.5 ** 2 / 2)
    base = rng.lognormal(np.log(1000), 0.5, (n, d))
    k = ((1 + tau) * mean_b - 0.03 * 20_000) / (mean_b * np.exp(0.1 ** 2 / 2))
    cand = base * k * rng.lognormal(0, 0.1, (n, d)) + 20_000 * (rng.random((n, d)) < 0.03)
    w = st.CaseWeights(n, 1000, n + 1)
    reps = st.paired_mean_reps(w, base, cand)
    new = np.mean([r.log_ratio.p_less(np.log1p(tau)) <= ALPHA for r in reps])
    old = np.mean([excess_p_values(r.ratio_reps - 1.0, tau, n)[1] <= ALPHA for r in reps])
    no_spike = 0.97 ** n  # a sample without a spike looks like a faster candidate: no method can tell
    print(f"spiky latency n={n}: false pass {old:.4f} before, {new:.4f} now (no spike in the sample: {no_spike:.4f})")
    assert new <= max(_mc_bound(ALPHA, d), no_spike + 3 * np.sqrt(no_spike * (1 - no_spike) / d))
    if n >= 200:
        assert new < old


@pytest.mark.slow
@pytest.mark.parametrize("n,trials", [(300, 300), (1000, 150)])
def test_p95_gate_power_at_its_stated_mde(n, trials):
    # latency.p95 max_increase "10%": the MDE the gate states (on the log scale of the ratio,
    # (1 + tau) exp(k se_log) - 1) must be caught with at least ~80% power. The normal MDE on the
    # ratio itself, used before, measured 0.65 (n=300) in the audit and 0.77 here.
    from replaygate.compare.gates import _log_mde
    rng = np.random.default_rng(n + 1)
    tau, q = 0.10, 0.95
    w = st.CaseWeights(n, 2000, seed=3)
    case = np.arange(n)

    def gate(effect):
        speed = rng.lognormal(6.5, 0.5, n)
        base = speed * rng.lognormal(0, 0.3, n)
        cand = speed * rng.lognormal(0, 0.3, n) * (1 + effect)
        ratio = st.weighted_quantile_reps(w, cand, case, [q])[:, 0] / st.weighted_quantile_reps(w, base, case, [q])[:, 0]
        return excess_p_values(ratio - 1.0, tau, None)[0], float(np.nanstd(np.log(ratio)))

    se_log = float(np.mean([gate(tau)[1] for _ in range(20)]))  # what the gate states at the boundary
    mde = _log_mde(1.0, tau, se_log, ALPHA)
    power = np.mean([gate(mde)[0] <= ALPHA for _ in range(trials)])
    print(f"p95 gate n={n}: stated MDE {mde:.3f}, measured power {power:.3f} ({trials} trials)")
    assert power >= 0.78 - 2 * np.sqrt(0.8 * 0.2 / trials)
