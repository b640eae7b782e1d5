# Reference values for RPSFTM g-estimation (estimators.rpsftm), computed independently in
# R with survival::survdiff (log-rank) and uniroot, as R package rpsftm does (rpsftm itself
# is not needed).
#
# Data: a simulated randomised trial with switching (true psi = -0.5), 300 patients,
# generated here and stored in the JSON so that tests need no R.  Experimental patients
# are on treatment throughout (perfect compliance: not re-censored, rpsftm's autoswitch);
# control patients switch at 2-15 months with probability 0.6.  For each of re-censoring
# on / off: psi_hat (root of the log-rank z of U(psi) = T_off + exp(psi) T_on between
# arms), the 95% test-based limits (z = +/- 1.96), the Cox log HR of the control arm's
# U(psi_hat) vs the experimental arm's observed times (Efron), the ITT log-rank z and the
# test-based SE |log HR| / |z_ITT|; the z of U(psi) on a grid of psi.  Also the log-rank
# z of survdiff on tied data.  The z is a step function of psi that can cross 0 several
# times within 1e-3 (rank changes), so roots found by different searches may differ by
# that much; the z values themselves must agree.
#
# Writes tests/reference/r/rpsftm_reference.json (read by tests/test_rpsftm.py; CI has no
# R).  Run from the repository root:  Rscript tests/reference/r/make_rpsftm_reference.R
# Needs: survival, jsonlite.

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

set.seed(20261206)
n <- 300
arm <- rbinom(n, 1, 0.5)
u <- rexp(n, log(2) / 12)
s <- ifelse(runif(n) < 0.6, runif(n, 2, 15), Inf)
af <- exp(0.5)
switched <- arm == 0 & u > s
t <- ifelse(arm == 1, u * af, ifelse(switched, s + (u - s) * af, u))
cens <- 36 - runif(n, 0, 24)
time <- pmin(t, cens)
event <- as.integer(t <= cens)
on_from <- ifelse(arm == 1, 0, ifelse(switched, s, time))
t_on <- pmax(time - on_from, 0)

counterfactual <- function(psi, recensor) {
  f <- exp(psi)
  U <- (time - t_on) + f * t_on
  cstar <- cens * min(1, f)
  cut <- recensor & arm == 0 & U > cstar  # experimental arm complied fully: autoswitch
  list(time = ifelse(cut, cstar, U), event = ifelse(cut, 0L, event))
}
logrank_z <- function(tt, dd, g) {
  sd <- survdiff(Surv(tt, dd) ~ g)
  unname((sd$obs[2] - sd$exp[2]) / sqrt(sd$var[2, 2]))
}
z_of <- function(psi, recensor) {
  cf <- counterfactual(psi, recensor)
  logrank_z(cf$time, cf$event, arm)
}

cases <- list()
for (recensor in c(TRUE, FALSE)) {
  root <- function(shift) {
    uniroot(function(p) z_of(p, recensor) - shift, c(-2, 2), tol = 1e-12)$root
  }
  psi <- root(0)
  lims <- sort(c(root(qnorm(0.975)), root(-qnorm(0.975))))
  cf <- counterfactual(psi, recensor)
  th <- ifelse(arm == 0, cf$time, time)
  eh <- ifelse(arm == 0, cf$event, event)
  fit <- coxph(Surv(th, eh) ~ arm, ties = "efron",
               control = coxph.control(eps = 1e-12, toler.chol = 1e-15, iter.max = 100))
  z_itt <- logrank_z(time, event, arm)
  grid <- c(seq(-2, 2, length.out = 41), psi + c(-1e-3, -1e-6, 1e-6, 1e-3))
  cases[[length(cases) + 1]] <- list(
    recensor = recensor, psi = psi, psi_ci = lims, log_hr = unname(coef(fit)),
    z_itt = z_itt, se = abs(unname(coef(fit))) / abs(z_itt), events = sum(eh),
    grid = grid, z_grid = sapply(grid, z_of, recensor = recensor)
  )
}

tied <- data.frame(time = c(1, 1, 2, 2, 2, 3, 4, 4, 5, 6, 6, 7),
                   event = c(1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1),
                   arm = c(0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1))
out <- list(
  data = list(time = time, event = event, arm = arm, t_on = t_on, cens = cens),
  cases = cases,
  tied = list(data = as.list(tied), z = logrank_z(tied$time, tied$event, tied$arm))
)
write_json(out, "tests/reference/r/rpsftm_reference.json", digits = NA, auto_unbox = TRUE)
