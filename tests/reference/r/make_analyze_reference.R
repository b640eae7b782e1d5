# Reference values for estimators.analyze (rwesim analyze) on GBSG2, from R glm, coxph
# and survfit.
#
# Data: tests/reference/data/gbsg2.csv, lifelines' copy of the German Breast Cancer Study
# Group 2 trial (686 patients; lifelines.datasets.load_gbsg2).  Coding (the same in
# tests/test_analyze.py and docs/guide/analyze.md):
#   treatment  horTh == "yes" (hormonal therapy) = 1
#   time       time / (365.25 / 12): days to months
#   event      cens (1 = recurrence-free survival event)
#   covariates age, tsize, pnodes, progrec, estrec (numeric, linear) and menostat
#              (Post / Pre), tgrade (I / II / III) as factors (reference: first level in
#              alphabetical order, Post and I, as rwesim's design_matrix codes them).
# Propensity score: glm logistic (epsilon 1e-14).  Weights as estimators/weighting.py:
# stabilized, each arm to mean 1 for ATE, the controls for ATT, the treated for ATC,
# one common constant for ATO / ATM.  Weighted Cox: coxph(Surv(months, cens) ~ trt,
# weights = w, robust = TRUE) (Efron ties; robust = Lin-Wei sandwich, naive = the
# model-based variance).  Naive and adjusted (all covariates) unweighted coxph.
# Weighted KM per arm: survfit(weights = w, robust = TRUE, influence = TRUE): S(tau)
# and RMST(tau) per arm and the SE of the difference with the weights held fixed
# (iptw_km's variance = "if-fixed-ps").
#
# Writes tests/reference/r/analyze_reference.json (read by tests/test_analyze.py; CI has
# no R).  Run from the repository root:  Rscript tests/reference/r/make_analyze_reference.R
# Needs: survival, jsonlite.

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

d <- read.csv("tests/reference/data/gbsg2.csv", stringsAsFactors = FALSE)
d$trt <- as.integer(d$horTh == "yes")
d$months <- d$time / (365.25 / 12)
d$menostat <- factor(d$menostat, levels = sort(unique(d$menostat)))
d$tgrade <- factor(d$tgrade, levels = sort(unique(d$tgrade)))
covariates <- c("age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec")
rhs <- paste(covariates, collapse = " + ")

ps_fit <- glm(as.formula(paste("trt ~", rhs)), family = binomial, data = d,
              control = glm.control(epsilon = 1e-14, maxit = 100))
e <- unname(fitted(ps_fit))
a <- d$trt

weights <- function(estimand) {
  w <- switch(estimand,
    ATE = ifelse(a == 1, 1 / e, 1 / (1 - e)),
    ATT = ifelse(a == 1, 1, e / (1 - e)),
    ATC = ifelse(a == 1, (1 - e) / e, 1),
    ATO = ifelse(a == 1, 1 - e, e),
    ATM = ifelse(a == 1, pmin(e, 1 - e) / e, pmin(e, 1 - e) / (1 - e))
  )
  groups <- switch(estimand,
    ATE = list(a == 1, a == 0), ATT = list(a == 0), ATC = list(a == 1),
    list(rep(TRUE, length(a)))
  )
  for (g in groups) w[g] <- w[g] * sum(g) / sum(w[g])
  w
}

ctl <- coxph.control(eps = 1e-12, toler.chol = 1e-15, iter.max = 200)

# influence values of RMST(tau) from those of S at the curve's times (step function)
rmst_influence <- function(fit, tau) {
  tt <- fit$time
  keep <- tt <= tau
  widths <- diff(c(tt[keep], tau))
  infl <- fit$influence.surv[, keep, drop = FALSE]
  list(value = sum(c(1, fit$surv[keep]) * diff(c(0, tt[keep], tau))),
       infl = as.vector(infl %*% widths))
}

km_case <- function(w, taus) {
  fits <- lapply(0:1, function(arm) {
    s <- a == arm
    survfit(Surv(months, cens) ~ 1, data = d[s, ], weights = w[s], robust = TRUE,
            influence = TRUE)
  })
  lapply(taus, function(tau) {
    surv <- sapply(fits, function(f) summary(f, times = tau, extend = FALSE)$surv)
    i_s <- lapply(fits, function(f) f$influence.surv[, findInterval(tau, f$time)])
    r <- lapply(fits, rmst_influence, tau = tau)
    list(
      tau = tau,
      surv_control = surv[1], surv_treated = surv[2],
      surv_diff_se_fixed = sqrt(sum(i_s[[1]]^2) + sum(i_s[[2]]^2)),
      rmst_control = r[[1]]$value, rmst_treated = r[[2]]$value,
      rmst_diff_se_fixed = sqrt(sum(r[[1]]$infl^2) + sum(r[[2]]$infl^2))
    )
  })
}

taus <- c(36, 60)
siptw <- list()
for (estimand in c("ATE", "ATT", "ATC", "ATO", "ATM")) {
  w <- weights(estimand)
  fit <- coxph(Surv(months, cens) ~ trt, data = d, weights = w, robust = TRUE,
               ties = "efron", control = ctl)
  siptw[[estimand]] <- list(
    log_hr = unname(coef(fit)),
    se_robust = sqrt(fit$var[1, 1]),
    se_naive = sqrt(fit$naive.var[1, 1]),
    weights = w
  )
}

naive <- coxph(Surv(months, cens) ~ trt, data = d, ties = "efron", control = ctl)
adjusted <- coxph(as.formula(paste("Surv(months, cens) ~ trt +", rhs)), data = d,
                  ties = "efron", control = ctl)

out <- list(
  source = "tests/reference/r/make_analyze_reference.R",
  r_version = R.version.string,
  survival_version = as.character(packageVersion("survival")),
  covariates = covariates,
  n = nrow(d), events = sum(d$cens), treated = sum(a),
  ps_coef = as.list(coef(ps_fit)),
  ps = e,
  siptw = siptw,
  naive_cox = list(log_hr = unname(coef(naive)), se = sqrt(naive$var[1, 1])),
  adjusted_cox = list(log_hr = unname(coef(adjusted)[1]), se = sqrt(adjusted$var[1, 1])),
  km = list(ATE = km_case(weights("ATE"), taus), ATT = km_case(weights("ATT"), taus))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/reference/r/analyze_reference.json")
