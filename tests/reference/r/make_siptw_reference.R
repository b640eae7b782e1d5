# Reference values for the weighted-Cox (sIPTW) estimator from R survival::coxph and
# survey::svycoxph, for every weight estimand (ATE, ATT, ATC, ATO, ATM), with trimming
# and truncation.
#
# One fixed confounded data set with tied times (rounded up to a 1-month grid); the
# propensity score is fitted by glm (logistic, epsilon 1e-14); the weights follow the
# conventions of estimators/weighting.py (stabilized: each arm to mean 1 for ATE, the
# controls for ATT, the treated for ATC, one common constant for ATO / ATM; trimming
# drops patients with the estimated PS outside [low, high] before stabilizing;
# truncation clips at quantile type 7 = numpy's linear percentile).  Written to
# tests/reference/r/siptw_reference.json (read by tests/test_weights_estimands.py; CI
# has no R).
#
# Run from the repository root:  Rscript tests/reference/r/make_siptw_reference.R
# Needs: survival, survey, jsonlite.

suppressPackageStartupMessages({
  library(survival)
  library(survey)
  library(jsonlite)
})

make_data <- function(n, seed) {
  set.seed(seed)
  x1 <- rnorm(n)
  x2 <- rbinom(n, 1, 0.4)
  x3 <- rnorm(n)
  ps <- plogis(-0.2 + 0.9 * x1 + 0.6 * x2 - 0.5 * x3)
  trt <- rbinom(n, 1, ps)
  lp <- -0.5 * trt + 0.4 * x1 + 0.3 * x2 + 0.2 * x3
  t_event <- rexp(n, 0.06 * exp(lp))
  t_cens <- runif(n, 6, 48)
  data.frame(
    time = pmax(ceiling(pmin(t_event, t_cens)), 1),  # months, tied on a 1-month grid
    status = as.integer(t_event <= t_cens),
    trt = trt, x1 = x1, x2 = x2, x3 = x3
  )
}

raw_weights <- function(e, a, estimand) {
  switch(estimand,
    ATE = ifelse(a == 1, 1 / e, 1 / (1 - e)),
    ATT = ifelse(a == 1, 1, e / (1 - e)),
    ATC = ifelse(a == 1, (1 - e) / e, 1),
    ATO = ifelse(a == 1, 1 - e, e),
    ATM = ifelse(a == 1, pmin(e, 1 - e) / e, pmin(e, 1 - e) / (1 - e))
  )
}

weights <- function(e, a, estimand, trim = NULL, truncate = NULL) {
  keep <- rep(TRUE, length(e))
  if (!is.null(trim)) keep <- e >= trim[1] & e <= trim[2]
  w <- raw_weights(e, a, estimand)
  w[!keep] <- 0
  groups <- switch(estimand,
    ATE = list(a == 1, a == 0), ATT = list(a == 0), ATC = list(a == 1),
    list(rep(TRUE, length(e)))
  )
  for (g in groups) {
    g <- g & keep
    w[g] <- w[g] * sum(g) / sum(w[g])
  }
  if (!is.null(truncate)) {
    est <- switch(estimand, ATT = a == 0, ATC = a == 1, rep(TRUE, length(e))) & keep
    q <- quantile(w[est], truncate / 100, type = 7, names = FALSE)
    w[est] <- pmin(pmax(w[est], q[1]), q[2])
  }
  list(w = w, keep = keep)
}

d <- make_data(500, 2026)
ps_fit <- glm(trt ~ x1 + x2 + x3, family = binomial, data = d,
              control = glm.control(epsilon = 1e-14, maxit = 100))
e <- unname(fitted(ps_fit))
ctl <- coxph.control(eps = 1e-12, toler.chol = 1e-15, iter.max = 200)

cases <- list(
  list(name = "ATE_efron", estimand = "ATE", ties = "efron"),
  list(name = "ATT_efron", estimand = "ATT", ties = "efron"),
  list(name = "ATC_efron", estimand = "ATC", ties = "efron"),
  list(name = "ATO_efron", estimand = "ATO", ties = "efron"),
  list(name = "ATM_efron", estimand = "ATM", ties = "efron"),
  list(name = "ATE_breslow", estimand = "ATE", ties = "breslow"),
  list(name = "ATO_breslow", estimand = "ATO", ties = "breslow"),
  list(name = "ATE_trim_0.1", estimand = "ATE", ties = "efron", trim = c(0.1, 0.9)),
  list(name = "ATT_trim_0.05_0.8", estimand = "ATT", ties = "efron", trim = c(0.05, 0.8)),
  list(name = "ATE_truncate_1_99", estimand = "ATE", ties = "efron", truncate = c(1, 99)),
  list(name = "ATC_truncate_5_95", estimand = "ATC", ties = "breslow", truncate = c(5, 95))
)

fit_case <- function(cs) {
  ww <- weights(e, d$trt, cs$estimand, cs$trim, cs$truncate)
  dk <- d[ww$keep, ]
  dk$w <- ww$w[ww$keep]
  fit <- coxph(Surv(time, status) ~ trt, data = dk, weights = w, robust = TRUE,
               ties = cs$ties, control = ctl)
  des <- svydesign(ids = ~1, weights = ~w, data = dk)
  # svycoxph re-evaluates its call: splice the literal values in (its model frame takes
  # `ties=` for a variable; `method=` is the same coxph argument)
  svy <- eval(bquote(svycoxph(Surv(time, status) ~ trt, design = des, method = .(cs$ties),
                              control = .(ctl))))
  list(
    name = cs$name, estimand = cs$estimand, ties = cs$ties,
    trim = if (is.null(cs$trim)) NULL else I(cs$trim),
    truncate = if (is.null(cs$truncate)) NULL else I(cs$truncate),
    n_kept = nrow(dk),
    weights = I(ww$w),
    coef = unname(coef(fit)),
    robust_se = unname(sqrt(diag(fit$var))),
    naive_se = unname(sqrt(diag(fit$naive.var))),
    svy_coef = unname(coef(svy)),
    svy_se = unname(sqrt(diag(vcov(svy))))
  )
}

result <- list(
  generator = "tests/reference/r/make_siptw_reference.R",
  r_version = R.version.string,
  survival_version = as.character(packageVersion("survival")),
  survey_version = as.character(packageVersion("survey")),
  covariates = I(c("x1", "x2", "x3")),
  data = as.list(d),
  ps = I(e),
  ps_coef = I(unname(coef(ps_fit))),
  cases = lapply(cases, fit_case)
)
write_json(result, "tests/reference/r/siptw_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
cat("wrote tests/reference/r/siptw_reference.json with", length(cases), "cases\n")
