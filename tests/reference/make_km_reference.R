# Reference values for the weighted / IPTW Kaplan-Meier estimators (estimators/km_effects.py).
#
# 1. "weighted": IPT-weighted KM per arm from survival::survfit(weights=), with its
#    infinitesimal-jackknife influence values (robust=TRUE, influence=TRUE): S(tau) and
#    RMST(tau) of each arm and the SE of their difference with the weights held fixed.
#    Propensity scores from glm (logistic; tight tolerance) on x1, x2; tied times.
# 2. "riskregression": riskRegression::ate(estimator = "IPTW") survival differences with
#    their influence-function SEs (PS estimation included).  Its IPTW estimator is the
#    Horvitz-Thompson mean sum 1(A = a) 1(T > t) / (n e_a G(t)), not the Hajek weighted
#    KM; the two coincide when the PS model has an intercept alone and the censoring
#    model is the KM per arm, which is the case stored here.
#
# Writes km_reference.json (read by tests/test_km_effects.py; CI has no R).
# Run from the repository root:  Rscript tests/reference/make_km_reference.R
# Needs: survival, riskRegression, jsonlite (Debian: r-cran-survival, r-cran-riskregression,
# r-cran-jsonlite).

suppressPackageStartupMessages({
  library(survival)
  library(riskRegression)
  library(jsonlite)
})

make_data <- function(n, seed, grid) {
  set.seed(seed)
  x1 <- rnorm(n)
  x2 <- rbinom(n, 1, 0.4)
  trt <- rbinom(n, 1, plogis(-0.2 + 0.8 * x1 - 0.6 * x2))
  t_event <- rexp(n, 0.05 * exp(-0.4 * trt + 0.5 * x1 + 0.4 * x2))
  t_cens <- runif(n, 10, 50)
  time <- pmin(t_event, t_cens)
  if (grid > 0) time <- pmax(ceiling(time / grid), 1) * grid  # months, tied on the grid
  data.frame(time = time, status = as.integer(t_event <= t_cens), trt = trt, x1 = x1, x2 = x2)
}

# influence values of RMST(tau) from those of S at the curve's times (step function)
rmst_influence <- function(fit, tau) {
  tt <- fit$time
  keep <- tt <= tau
  widths <- diff(c(tt[keep], tau))
  infl <- fit$influence.surv[, keep, drop = FALSE]
  list(value = sum(c(1, fit$surv[keep]) * diff(c(0, tt[keep], tau))),
       infl = as.vector(infl %*% widths))
}

weighted_case <- function(name, n, seed, grid, estimand, taus) {
  d <- make_data(n, seed, grid)
  ps <- glm(trt ~ x1 + x2, data = d, family = binomial,
            control = glm.control(epsilon = 1e-14, maxit = 100))
  e <- fitted(ps)
  w <- if (estimand == "ATE") ifelse(d$trt == 1, 1 / e, 1 / (1 - e)) else
    ifelse(d$trt == 1, 1, e / (1 - e))
  fits <- lapply(0:1, function(a) {
    s <- d$trt == a
    survfit(Surv(time, status) ~ 1, data = d[s, ], weights = w[s], robust = TRUE,
            influence = TRUE)
  })
  out <- list()
  for (tau in taus) {
    surv <- sapply(fits, function(f) summary(f, times = tau, extend = FALSE)$surv)
    i_s <- lapply(fits, function(f) f$influence.surv[, findInterval(tau, f$time)])
    r <- lapply(fits, rmst_influence, tau = tau)
    out[[length(out) + 1]] <- list(
      tau = tau,
      surv_control = surv[1], surv_treated = surv[2],
      surv_diff_se_fixed = sqrt(sum(i_s[[1]]^2) + sum(i_s[[2]]^2)),
      rmst_control = r[[1]]$value, rmst_treated = r[[2]]$value,
      rmst_diff_se_fixed = sqrt(sum(r[[1]]$infl^2) + sum(r[[2]]$infl^2))
    )
  }
  list(name = name, estimand = estimand, data = d, ps_coef = unname(coef(ps)),
       horizons = out)
}

# ate() evaluates the models' calls again, at top level: this case is built there
rr_times <- c(6, 12, 24)
d <- make_data(300, 24, 0)
d$trt <- factor(d$trt)
tm <- glm(trt ~ 1, data = d, family = binomial)
cm <- coxph(Surv(time, status == 0) ~ strata(trt), data = d, x = TRUE, y = TRUE)
# the outcome model is not used by the IPTW estimator (a formula here makes rms::cph fail)
om <- coxph(Surv(time, status) ~ trt, data = d, x = TRUE, y = TRUE)
rr <- ate(event = om, treatment = tm, censor = cm, data = d,
          times = rr_times, estimator = "IPTW", cause = 1, se = TRUE, product.limit = TRUE,
          verbose = FALSE)
rr_diff <- as.data.frame(rr$diffRisk)
rr_mean <- as.data.frame(rr$meanRisk)
d$trt <- as.integer(as.character(d$trt))
rr_case <- list(
  name = "intercept_ps_km_censoring", data = d,
  horizons = lapply(seq_along(rr_times), function(k) list(
    tau = rr_times[k],
    surv_control = 1 - rr_mean$estimate[rr_mean$treatment == "0" & rr_mean$time == rr_times[k]],
    surv_treated = 1 - rr_mean$estimate[rr_mean$treatment == "1" & rr_mean$time == rr_times[k]],
    surv_diff = -rr_diff$estimate[rr_diff$time == rr_times[k]],
    surv_diff_se = rr_diff$se[rr_diff$time == rr_times[k]]))
)

ref <- list(
  r_version = R.version.string,
  survival = as.character(packageVersion("survival")),
  riskRegression = as.character(packageVersion("riskRegression")),
  weighted = list(
    weighted_case("ate_ties", 300, 21, 1, "ATE", c(6, 12, 24)),
    weighted_case("att_ties", 300, 22, 1, "ATT", c(12, 24)),
    weighted_case("ate_continuous", 250, 23, 0, "ATE", c(12, 30))
  ),
  riskregression = list(rr_case)
)
write_json(ref, "tests/reference/km_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = FALSE, dataframe = "columns")
cat("wrote tests/reference/km_reference.json\n")
