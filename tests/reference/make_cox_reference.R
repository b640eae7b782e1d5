# Reference values for the Cox engine from R survival::coxph.
#
# Builds a handful of fixed data sets with tied times (times rounded up to a grid),
# non-uniform weights, clusters and strata, fits coxph with Efron and Breslow ties
# and writes data + expected values to cox_reference.json (read by
# tests/test_cox_reference.py; CI has no R).
#
# Run from the repository root:  Rscript tests/reference/make_cox_reference.R
# Needs: survival, jsonlite (Debian: r-cran-survival r-cran-jsonlite).

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

make_data <- function(n, seed, grid, n_strata = 1, n_clusters = n) {
  set.seed(seed)
  trt <- rbinom(n, 1, 0.5)
  age <- round(rnorm(n, 65, 10))
  x3 <- rnorm(n)
  s1 <- sample.int(n_strata, n, replace = TRUE) - 1L
  s2 <- sample.int(2, n, replace = TRUE) - 1L
  lp <- -0.5 * trt + 0.03 * (age - 65) + 0.2 * x3 + 0.3 * s1
  t_event <- rexp(n, 0.06 * exp(lp))
  t_cens <- runif(n, 6, 48)
  w <- round(runif(n, 0.3, 3), 3)
  cl <- sample.int(n_clusters, n, replace = TRUE) - 1L
  x4 <- rbinom(n, 1, 0.3)  # drawn last: earlier columns do not depend on them
  x5 <- rnorm(n)
  data.frame(
    time = pmax(ceiling(pmin(t_event, t_cens) / grid), 1) * grid,  # months, tied on the grid
    status = as.integer(t_event <= t_cens),
    trt = trt, age = age, x3 = x3, x4 = x4, x5 = x5,
    w = w, cl = cl, s1 = s1, s2 = s2
  )
}

ctl <- coxph.control(eps = 1e-12, toler.chol = 1e-15, iter.max = 200)

cases <- list(
  list(name = "efron_weighted_robust", n = 300, seed = 11, grid = 1, ties = "efron",
       rhs = "trt + age + x3", weights = TRUE, cluster = FALSE, strata = NULL, resid = TRUE),
  list(name = "breslow_weighted_robust", n = 300, seed = 11, grid = 1, ties = "breslow",
       rhs = "trt + age + x3", weights = TRUE, cluster = FALSE, strata = NULL, resid = TRUE),
  list(name = "efron_weighted_cluster", n = 300, seed = 12, grid = 1, ties = "efron",
       rhs = "trt + age", weights = TRUE, cluster = TRUE, n_clusters = 60, strata = NULL,
       resid = TRUE),
  list(name = "breslow_unweighted_cluster", n = 250, seed = 13, grid = 1, ties = "breslow",
       rhs = "trt + x3", weights = FALSE, cluster = TRUE, n_clusters = 50, strata = NULL,
       resid = FALSE),
  list(name = "efron_strata_weighted_cluster", n = 400, seed = 14, grid = 1, ties = "efron",
       rhs = "trt + age + x3", weights = TRUE, cluster = TRUE, n_clusters = 80,
       strata = "s1", n_strata = 3, resid = TRUE),
  list(name = "breslow_strata_unweighted", n = 300, seed = 15, grid = 1, ties = "breslow",
       rhs = "trt + x3", weights = FALSE, cluster = FALSE, strata = "s1", n_strata = 2,
       resid = FALSE),
  list(name = "efron_heavy_ties_weighted", n = 300, seed = 16, grid = 6, ties = "efron",
       rhs = "trt", weights = TRUE, cluster = FALSE, strata = NULL, resid = TRUE),
  list(name = "breslow_heavy_ties_weighted", n = 300, seed = 16, grid = 6, ties = "breslow",
       rhs = "trt", weights = TRUE, cluster = FALSE, strata = NULL, resid = TRUE),
  list(name = "efron_two_strata_columns", n = 400, seed = 17, grid = 2, ties = "efron",
       rhs = "trt + age", weights = TRUE, cluster = FALSE, strata = c("s1", "s2"),
       n_strata = 2, resid = FALSE),
  list(name = "efron_unweighted", n = 200, seed = 18, grid = 1, ties = "efron",
       rhs = "trt + age + x3", weights = FALSE, cluster = FALSE, strata = NULL, resid = TRUE),
  # p > 3: the engine forms the information from BLAS Gram products instead
  list(name = "efron_five_covariates_strata_cluster", n = 400, seed = 19, grid = 1,
       ties = "efron", rhs = "trt + age + x3 + x4 + x5", weights = TRUE, cluster = TRUE,
       n_clusters = 100, strata = "s1", n_strata = 2, resid = TRUE),
  list(name = "breslow_five_covariates_weighted", n = 300, seed = 20, grid = 2,
       ties = "breslow", rhs = "trt + age + x3 + x4 + x5", weights = TRUE, cluster = FALSE,
       strata = NULL, resid = FALSE)
)

fit_case <- function(cs) {
  n_strata <- if (is.null(cs$n_strata)) 1 else cs$n_strata
  n_clusters <- if (is.null(cs$n_clusters)) cs$n else cs$n_clusters
  d <- make_data(cs$n, cs$seed, cs$grid, n_strata, n_clusters)
  rhs <- cs$rhs
  if (!is.null(cs$strata)) rhs <- paste0(rhs, " + strata(", paste(cs$strata, collapse = ", "), ")")
  f <- as.formula(paste("Surv(time, status) ~", rhs))
  args <- list(formula = f, data = d, ties = cs$ties, robust = TRUE, control = ctl)
  if (cs$weights) args$weights <- d$w
  if (cs$cluster) args$cluster <- d$cl
  fit <- do.call(coxph, args)
  covs <- strsplit(cs$rhs, " \\+ ")[[1]]
  out <- list(
    name = cs$name, ties = cs$ties, covariates = I(covs),
    weights = cs$weights, cluster = cs$cluster,
    strata = if (is.null(cs$strata)) list() else as.list(cs$strata),
    data = as.list(d[, c("time", "status", covs, "w", "cl", "s1", "s2")]),
    coef = I(unname(coef(fit))),
    model_se = I(unname(sqrt(diag(fit$naive.var)))),
    robust_se = I(unname(sqrt(diag(fit$var)))),
    naive_var = unname(fit$naive.var),
    robust_var = unname(fit$var),
    loglik = fit$loglik[2],
    loglik_null = fit$loglik[1],
    iter = fit$iter,
    n_ties = sum(duplicated(d$time[d$status == 1]))
  )
  if (cs$resid) out$score_resid <- unname(as.matrix(residuals(fit, type = "score")))
  out
}

result <- list(
  generator = "tests/reference/make_cox_reference.R",
  r_version = R.version.string,
  survival_version = as.character(packageVersion("survival")),
  control = list(eps = ctl$eps, iter_max = ctl$iter.max),
  cases = lapply(cases, fit_case)
)
write_json(result, "tests/reference/cox_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE, matrix = "rowmajor")
cat("wrote tests/reference/cox_reference.json with", length(cases), "cases\n")
