# Reference values for the IPCW (time-varying-weighted) Cox model, from R survival::coxph.
#
# Data: tests/reference/data/ipcw_300.csv (300 patients of flatiron-informative, written
# by tests/reference/r/make_ipcw_data.py; times rounded to 0.1 month, so events and
# censorings tie).  For each case:
#   1. censoring model: coxph(Surv(time, cens) ~ covariates, ties = "breslow") with
#      cens = 1 - event, or, in the "admin" cases, 1 - event only for censorings before
#      the patient's administrative time (column admin; a censoring at it is not modelled),
#      per arm (by_arm) or pooled with treat as a covariate; K_i(t) = exp(-H0(t) exp(lp_i))
#      with H0 = basehaz(fit, centered = FALSE) and lp_i = x_i' beta (uncentred);
#   2. stabilising numerator: the arm's survfit(Surv(time, 1 - event) ~ 1) (else 1);
#   3. survSplit at every censoring time; interval (start, stop] of patient i weighs
#      w_i * num_a(start) / K_i(start);
#   4. coxph(Surv(start, stop, event) ~ treat, weights = wt, cluster = id, ties = ties):
#      coef, robust (cluster) variance, naive variance.
#
# Writes tests/reference/r/ipcw_reference.json (read by tests/test_ipcw.py; CI has no R).
# Run from the repository root:  Rscript tests/reference/r/make_ipcw_reference.R
# Needs: survival, jsonlite.

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

d <- read.csv("tests/reference/data/ipcw_300.csv")
covs <- c("age", "visceral", "ecog_1", "ecog_2plus", "ecog_unknown")
ctl <- coxph.control(eps = 1e-12, toler.chol = 1e-15, iter.max = 200)

step_left <- function(times, values, t, empty) {
  # value of the right-continuous step function at t (values[k] from times[k] on)
  k <- findInterval(t, times)
  ifelse(k == 0, empty, values[pmax(k, 1)])
}

censoring_K <- function(d, by_arm, admin) {
  d$cens <- (1 - d$event) * (if (admin) as.numeric(d$time < d$admin - 1e-9) else 1)
  # returns a function (i, t) -> K_i(t) for rows of d
  groups <- if (by_arm) list(d$treat == 0, d$treat == 1) else list(rep(TRUE, nrow(d)))
  H <- vector("list", length(groups))
  lp <- numeric(nrow(d))
  for (g in seq_along(groups)) {
    m <- groups[[g]]
    dg <- d[m, ]  # (cens is a column of d here)
    use <- covs[sapply(covs, function(v) length(unique(dg[[v]])) > 1)]
    if (!by_arm) use <- c("treat", use)
    f <- as.formula(paste("Surv(time, cens) ~", paste(use, collapse = " + ")))
    fit <- coxph(f, data = dg, ties = "breslow", control = ctl)
    bh <- basehaz(fit, centered = FALSE)
    H[[g]] <- bh
    lp[m] <- as.vector(as.matrix(dg[, use]) %*% coef(fit))
  }
  gid <- if (by_arm) d$treat + 1 else rep(1, nrow(d))
  function(i, t) {
    bh <- H[[gid[i]]]
    exp(-step_left(bh$time, bh$hazard, t, 0) * exp(lp[i]))
  }
}

km_num <- function(d, stabilized) {
  if (!stabilized) return(function(i, t) rep(1, length(t)))
  fits <- lapply(0:1, function(a) survfit(Surv(time, 1 - event) ~ 1, data = d[d$treat == a, ]))
  function(i, t) {
    f <- fits[[d$treat[i] + 1]]
    step_left(f$time, f$surv, t, 1)
  }
}

cases <- list()
grid <- rbind(expand.grid(ties = c("efron", "breslow"), stabilized = c(TRUE, FALSE),
                          by_arm = c(TRUE, FALSE), admin = FALSE, stringsAsFactors = FALSE),
              expand.grid(ties = c("efron", "breslow"), stabilized = FALSE,
                          by_arm = c(TRUE, FALSE), admin = TRUE, stringsAsFactors = FALSE))
for (row in seq_len(nrow(grid))) {
  ties <- grid$ties[row]; stabilized <- grid$stabilized[row]
  by_arm <- grid$by_arm[row]; admin <- grid$admin[row]
  {
    {
      K <- censoring_K(d, by_arm, admin)
      num <- km_num(d, stabilized)
      cuts <- sort(unique(d$time[d$event == 0]))
      long <- survSplit(Surv(time, event) ~ ., data = d, cut = cuts, start = "start",
                        end = "stop", event = "event")
      long$wt <- NA_real_
      for (i in seq_len(nrow(d))) {
        r <- which(long$id == d$id[i])
        long$wt[r] <- d$w[i] * num(i, long$start[r]) / K(i, long$start[r])
      }
      fit <- coxph(Surv(start, stop, event) ~ treat, data = long, weights = wt,
                   cluster = id, ties = ties, control = ctl)
      cases[[length(cases) + 1]] <- list(
        by_arm = by_arm, stabilized = stabilized, ties = ties, admin = admin,
        coef = unname(coef(fit)),
        robust_se = unname(sqrt(fit$var[1, 1])),
        naive_se = unname(sqrt(fit$naive.var[1, 1])),
        loglik = unname(fit$loglik[2]),
        n_rows = nrow(long),
        max_weight = max(long$wt)
      )
    }
  }
}
out <- list(covariates = covs, r_version = R.version.string,
            survival_version = as.character(packageVersion("survival")), cases = cases)
write_json(out, "tests/reference/r/ipcw_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
