# Reference values for estimators.gcomp and estimators.aiptw on GBSG2, from
# riskRegression::ate (estimator = "GFORMULA" and "AIPTW,AIPCW") and predictCox.
#
# Data: tests/reference/data/gbsg2.csv (686 patients).  Coding (as in
# make_analyze_reference.R and tests/test_gcomp.py):
#   treatment  horTh == "yes" = 1;  time  time / (365.25 / 12) (days to months);
#   event      cens;  covariates age, menostat (Post / Pre factor), tsize, pnodes, progrec,
#              estrec (linear).
# Outcome model: coxph(Surv(months, cens) ~ trt + covariates, ties = "breslow"), Breslow
# baseline hazard (predictCox).  Censoring model (AIPTW): coxph(Surv(months, cens == 0) ~
# covariates + trt, ties = "breslow").  Propensity: glm logistic on the covariates.
# Horizons 12 and 24 months.  Stored per horizon and estimand:
#   gformula surv_diff / rmst_diff point estimates (ATE from ate(); ATT / ATC as the mean
#   over the treated / controls of predictCox's S_i(t | a); RMST = integral of the averaged
#   step curve from 0 to the horizon);
#   aiptw (ATE) S_1, S_0, surv_diff and riskRegression's influence-function SE of the
#   difference, with the nuisance-estimation terms (known.nuisance = FALSE, the default)
#   and without them (known.nuisance = TRUE).
#
# Writes tests/reference/r/gcomp_reference.json (read by tests/test_gcomp.py; CI has no
# R).  Run from the repository root:  Rscript tests/reference/r/make_gcomp_reference.R
# Needs: survival, riskRegression, jsonlite.

suppressPackageStartupMessages({
  library(survival)
  library(riskRegression)
  library(jsonlite)
})

d <- read.csv("tests/reference/data/gbsg2.csv", stringsAsFactors = FALSE)
d$trt <- factor(as.integer(d$horTh == "yes"), levels = c(0, 1))
d$months <- d$time / (365.25 / 12)
d$menostat <- factor(d$menostat, levels = sort(unique(d$menostat)))
covariates <- c("age", "menostat", "tsize", "pnodes", "progrec", "estrec")
rhs <- paste(covariates, collapse = " + ")
horizons <- c(12, 24)

ctl <- coxph.control(eps = 1e-12, toler.chol = 1e-15, iter.max = 200)
outcome <- coxph(as.formula(paste("Surv(months, cens) ~ trt +", rhs)), data = d,
                 ties = "breslow", x = TRUE, y = TRUE, control = ctl)
censor <- coxph(as.formula(paste("Surv(months, cens == 0) ~ trt +", rhs)), data = d,
                ties = "breslow", x = TRUE, y = TRUE, control = ctl)
ps <- glm(as.formula(paste("trt ~", rhs)), family = binomial, data = d,
          control = glm.control(epsilon = 1e-14, maxit = 100))

# S_i(t | a) on every event time (for the RMST) and the horizons
grid <- sort(unique(c(d$months[d$cens == 1], horizons)))
grid <- grid[grid <= max(horizons)]
surv_under <- function(a) {
  nd <- d
  nd$trt <- factor(a, levels = c(0, 1))
  predictCox(outcome, newdata = nd, times = grid, type = "survival")$survival
}
S1 <- surv_under(1)
S0 <- surv_under(0)
rmst_of <- function(curve, tau) {  # curve on grid; right-continuous step function
  knots <- c(0, grid[grid < tau])
  vals <- c(1, curve[grid < tau])
  widths <- diff(c(knots, tau))
  sum(vals * widths)
}
pop <- list(ATE = rep(TRUE, nrow(d)), ATT = d$trt == 1, ATC = d$trt == 0)
gformula <- list()
for (est in names(pop)) {
  m1 <- colMeans(S1[pop[[est]], , drop = FALSE])
  m0 <- colMeans(S0[pop[[est]], , drop = FALSE])
  rows <- list()
  for (tau in horizons) {
    k <- which(grid == tau)
    rows[[as.character(tau)]] <- list(
      surv_treated = m1[k], surv_control = m0[k], surv_diff = m1[k] - m0[k],
      rmst_treated = rmst_of(m1, tau), rmst_control = rmst_of(m0, tau),
      rmst_diff = rmst_of(m1, tau) - rmst_of(m0, tau)
    )
  }
  gformula[[est]] <- rows
}

ate_g <- ate(outcome, treatment = "trt", data = d, times = horizons,
             estimator = "GFORMULA", se = FALSE, verbose = FALSE)
g_check <- as.data.frame(ate_g$diffRisk)

aiptw <- function(known) {
  a <- ate(event = outcome, treatment = ps, censor = censor, data = d, times = horizons,
           estimator = "AIPTW,AIPCW", se = TRUE, known.nuisance = known, verbose = FALSE)
  list(mean = as.data.frame(a$meanRisk), diff = as.data.frame(a$diffRisk))
}
ai <- aiptw(FALSE)
ai_known <- aiptw(TRUE)

aiptw_out <- list()
for (tau in horizons) {
  mr <- ai$mean[ai$mean$time == tau, ]
  dr <- ai$diff[ai$diff$time == tau, ]
  drk <- ai_known$diff[ai_known$diff$time == tau, ]
  # riskRegression works on the risk scale F = 1 - S: S_1 - S_0 = -(F_1 - F_0)
  aiptw_out[[as.character(tau)]] <- list(
    surv_treated = 1 - mr$estimate[mr$treatment == "1"],
    surv_control = 1 - mr$estimate[mr$treatment == "0"],
    surv_diff = -dr$estimate,
    se = dr$se,
    se_known_nuisance = drk$se
  )
}

out <- list(
  horizons = horizons,
  covariates = covariates,
  outcome_coef = unname(coef(outcome)),
  gformula = gformula,
  gformula_ate_check = list(time = g_check$time, surv_diff = -g_check$estimate),
  aiptw = aiptw_out
)
write_json(out, "tests/reference/r/gcomp_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
