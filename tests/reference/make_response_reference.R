# Reference values for the binary-outcome estimators (estimators/binary.py), from R glm
# and survey::svyglm.
#
# Builds fixed confounded data sets (binary outcome, binary treatment, two covariates),
# fits the crude and the adjusted logistic regressions with glm, the logistic PS with glm,
# and the PS-weighted risk difference (svyglm, gaussian) and log odds ratio (svyglm,
# quasibinomial) of the ATE and the ATT with the weights taken as known.  Writes data and
# expected values to r/response_reference.json (read by tests/test_response_estimators.py;
# CI has no R).
#
# Run from the repository root:  Rscript tests/reference/make_response_reference.R
# Needs: survey, jsonlite.

suppressPackageStartupMessages({
  library(survey)
  library(jsonlite)
})

make_data <- function(n, seed) {
  set.seed(seed)
  x1 <- rnorm(n)
  x2 <- rbinom(n, 1, 0.4)
  trt <- rbinom(n, 1, plogis(-0.2 + 0.7 * x1 + 0.5 * x2))
  y <- rbinom(n, 1, plogis(-1.0 + 0.6 * trt + 0.5 * x1 - 0.4 * x2))
  data.frame(y = y, trt = trt, x1 = x1, x2 = x2)
}

coef_se <- function(m, term = "trt") {
  list(coef = unname(coef(m)[term]), se = unname(sqrt(diag(vcov(m)))[term]))
}

cases <- list()
for (spec in list(list(n = 500, seed = 21), list(n = 300, seed = 22))) {
  d <- make_data(spec$n, spec$seed)
  ps <- fitted(glm(trt ~ x1 + x2, family = binomial, data = d))
  weights <- list(
    ATE = ifelse(d$trt == 1, 1 / ps, 1 / (1 - ps)),
    ATT = ifelse(d$trt == 1, 1, ps / (1 - ps))
  )
  weighted <- list()
  for (est in names(weights)) {
    d$w <- weights[[est]]
    des <- svydesign(ids = ~1, weights = ~w, data = d)
    rd <- svyglm(y ~ trt, design = des, family = gaussian())
    lor <- svyglm(y ~ trt, design = des, family = quasibinomial())
    weighted[[est]] <- list(risk_diff = coef_se(rd), log_or = coef_se(lor))
  }
  cases[[length(cases) + 1]] <- list(
    n = spec$n,
    seed = spec$seed,
    data = d[, c("y", "trt", "x1", "x2")],
    crude = coef_se(glm(y ~ trt, family = binomial, data = d)),
    adjusted = coef_se(glm(y ~ trt + x1 + x2, family = binomial, data = d)),
    weighted = weighted
  )
}

out <- list(
  generated_by = "tests/reference/make_response_reference.R",
  r_version = R.version.string,
  survey_version = as.character(packageVersion("survey")),
  cases = cases
)
writeLines(
  toJSON(out, auto_unbox = TRUE, digits = NA, dataframe = "columns"),
  "tests/reference/r/response_reference.json"
)
