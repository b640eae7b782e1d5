# Reference values for the known-biased PS controls (estimators/ps_controls.py) and the
# natural spline basis (estimators/splines.py), from R glm + survival::coxph + splines::ns.
#
# Builds fixed confounded data sets, fits the logistic PS with glm, then coxph on
# treatment plus the logit PS (linear, and ns(logit, df)), and coxph stratified on PS
# quintiles; also ns() bases of a few vectors.  Writes data + expected values to
# ps_controls_reference.json (read by tests/test_ps_controls.py; CI has no R).
#
# Run from the repository root:  Rscript tests/reference/make_ps_controls_reference.R
# Needs: survival, jsonlite (Debian: r-cran-survival r-cran-jsonlite); splines is base R.

suppressPackageStartupMessages({
  library(survival)
  library(splines)
  library(jsonlite)
})

make_data <- function(n, seed) {
  set.seed(seed)
  x1 <- rnorm(n)
  x2 <- rbinom(n, 1, 0.4)
  x3 <- rnorm(n)
  trt <- rbinom(n, 1, plogis(-0.3 + 0.8 * x1 + 0.6 * x2 - 0.5 * x3))
  lp <- -0.4 * trt + 0.5 * x1 + 0.4 * x2 + 0.3 * x3
  t_event <- rexp(n, 0.05 * exp(lp))
  t_cens <- runif(n, 6, 60)
  data.frame(
    time = pmin(t_event, t_cens), event = as.integer(t_event <= t_cens),
    trt = trt, x1 = x1, x2 = x2, x3 = x3
  )
}

fit <- function(f, d, robust = FALSE) {
  m <- coxph(f, data = d, ties = "efron", robust = robust)
  list(coef = unname(coef(m)[1]), se = unname(sqrt(diag(vcov(m)))[1]))
}

cases <- list()
for (spec in list(list(n = 400, seed = 11), list(n = 250, seed = 12))) {
  d <- make_data(spec$n, spec$seed)
  ps_fit <- glm(trt ~ x1 + x2 + x3, family = binomial, data = d)
  d$logit <- predict(ps_fit, type = "link")
  q <- quantile(plogis(d$logit), probs = seq(0, 1, 0.2))
  d$quintile <- cut(plogis(d$logit), q, include.lowest = TRUE, labels = FALSE)
  cases[[length(cases) + 1]] <- list(
    n = spec$n, seed = spec$seed,
    data = d[, c("time", "event", "trt", "x1", "x2", "x3")],
    logit = d$logit,
    ps_cox = fit(Surv(time, event) ~ trt + logit, d),
    ps_cox_robust = fit(Surv(time, event) ~ trt + logit, d, robust = TRUE),
    ps_spline_cox_df4 = fit(Surv(time, event) ~ trt + ns(logit, df = 4), d),
    ps_spline_cox_df3 = fit(Surv(time, event) ~ trt + ns(logit, df = 3), d),
    ps_strata_cox = fit(Surv(time, event) ~ trt + strata(quintile), d)
  )
}

set.seed(3)
bases <- list()
for (spec in list(list(x = rnorm(40), df = 4), list(x = rexp(25), df = 2),
                  list(x = runif(30, -3, 2), df = 1), list(x = rnorm(60), df = 6))) {
  bases[[length(bases) + 1]] <- list(x = spec$x, df = spec$df, basis = unname(ns(spec$x, df = spec$df)[, , drop = FALSE]))
}

out <- list(
  generated_with = paste(R.version.string, "survival", packageVersion("survival")),
  cases = cases, ns = bases
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, matrix = "rowmajor"),
           "tests/reference/ps_controls_reference.json")
