# Reference values for psm (1:k matching, with and without replacement) from R.
#
# An independent R implementation of the matching rules documented in
# estimators/matching.py (order "data": k rounds of greedy 1:1 without replacement, or
# each treated patient's k nearest controls with replacement; ties by row index;
# caliper in SDs of the logit PS, inclusive), MatchIt-style weights (treated 1, a
# control 1 / k_i in set i, scaled by distinct controls / sets), then
# survival::coxph on one row per set member, weighted, clustered on matched set
# (optionally stratified on it), and the Austin-Cafri variance assembled from three
# coxph robust variances: cluster(set) + cluster(patient) - per-row robust.
# Writes data + sets + expected values to matched_cox_reference.json (read by
# tests/test_psm_variants.py; CI has no R).
#
# Run from the repository root:  Rscript tests/reference/make_matched_cox_reference.R
# Needs: survival, jsonlite.

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

make_data <- function(n, seed) {
  set.seed(seed)
  x1 <- rnorm(n)
  x2 <- rbinom(n, 1, 0.4)
  trt <- rbinom(n, 1, plogis(-0.2 + 0.8 * x1 - 0.5 * x2))
  t_event <- rexp(n, 0.06 * exp(-0.5 * trt + 0.4 * x1 + 0.3 * x2))
  t_cens <- runif(n, 6, 48)
  data.frame(
    time = pmax(ceiling(pmin(t_event, t_cens)), 1),  # months on a 1-month grid: ties
    status = as.integer(t_event <= t_cens),
    trt = trt, x1 = x1, x2 = x2
  )
}

match_sets <- function(logit, trt, ratio, replace, caliper) {
  width <- if (is.null(caliper)) Inf else caliper * sd(logit)
  tr <- which(trt == 1)
  co <- which(trt == 0)
  taken <- rep(list(integer(0)), length(tr))
  if (replace) {
    for (i in seq_along(tr)) {
      d <- abs(logit[co] - logit[tr[i]])
      o <- order(d, co)
      taken[[i]] <- head(co[o][d[o] <= width], ratio)
    }
  } else {
    free <- rep(TRUE, length(co))
    for (r in seq_len(ratio)) {
      for (i in seq_along(tr)) {
        if (!any(free)) next
        d <- abs(logit[co] - logit[tr[i]])
        d[!free] <- Inf
        j <- order(d, co)[1]
        if (d[j] <= width) {
          taken[[i]] <- c(taken[[i]], co[j])
          free[j] <- FALSE
        }
      }
    }
  }
  keep <- lengths(taken) > 0
  list(treated = tr[keep], controls = taken[keep])
}

ctl <- coxph.control(eps = 1e-12, toler.chol = 1e-15, iter.max = 200)

cases <- list(
  list(name = "1to1_caliper", ratio = 1, replace = FALSE, caliper = 0.2, strata = FALSE),
  list(name = "1to3_caliper", ratio = 3, replace = FALSE, caliper = 0.2, strata = FALSE),
  list(name = "1to3_caliper_strata", ratio = 3, replace = FALSE, caliper = 0.2, strata = TRUE),
  list(name = "1to2_replace_caliper", ratio = 2, replace = TRUE, caliper = 0.2, strata = FALSE),
  list(name = "1to5_replace", ratio = 5, replace = TRUE, caliper = NULL, strata = FALSE),
  list(name = "1to5_replace_strata", ratio = 5, replace = TRUE, caliper = NULL, strata = TRUE)
)

df <- make_data(400, 2026)
ps <- glm(trt ~ x1 + x2, family = binomial, data = df)
logit <- unname(ps$linear.predictors)

out <- list()
for (case in cases) {
  m <- match_sets(logit, df$trt, case$ratio, case$replace, case$caliper)
  k <- lengths(m$controls)
  n_sets <- length(m$treated)
  scale <- length(unique(unlist(m$controls))) / n_sets
  rows <- c(m$treated, unlist(m$controls))
  ad <- df[rows, ]
  ad$set <- c(seq_len(n_sets), rep(seq_len(n_sets), k))
  ad$pid <- rows
  ad$rid <- seq_len(nrow(ad))
  ad$w <- c(rep(1, n_sets), rep(scale / k, k))
  rhs <- if (case$strata) "trt + strata(set)" else "trt"
  fit <- function(cl) {
    f <- as.formula(paste("Surv(time, status) ~", rhs, "+ cluster(", cl, ")"))
    coxph(f, data = ad, weights = w, ties = "efron", control = ctl)
  }
  f_set <- fit("set")
  f_pid <- fit("pid")
  f_rid <- fit("rid")
  ac <- vcov(f_set) + vcov(f_pid) - vcov(f_rid)
  out[[length(out) + 1]] <- list(
    name = case$name, ratio = case$ratio, replace = case$replace,
    caliper = if (is.null(case$caliper)) NA else case$caliper, strata = case$strata,
    sets = lapply(seq_len(n_sets), function(i) c(m$treated[i], m$controls[[i]]) - 1L),
    coef = unname(coef(f_set)[["trt"]]),
    model_se = sqrt(f_set$naive.var[1, 1]),
    cluster_se = sqrt(vcov(f_set)[1, 1]),
    austin_cafri_se = sqrt(ac[1, 1])
  )
}

res <- list(
  generator = "tests/reference/make_matched_cox_reference.R",
  r_version = R.version.string,
  survival_version = as.character(packageVersion("survival")),
  data = as.list(df),
  cases = out
)
write_json(res, "tests/reference/matched_cox_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
