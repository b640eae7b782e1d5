# Reference values for the crossover estimators (estimators.crossover): intention-to-treat
# Cox, per-protocol Cox (switchers censored at the switch) and IPCW for switching
# (logistic switching model among the control patients who progressed during follow-up,
# weights 1 / (1 - p_hat) on the non-switchers from progression on, weighted Cox on
# counting-process rows with the robust variance clustered by patient), computed
# independently in R with glm and survival::coxph.
#
# Data: a simulated randomised trial of 400 patients generated here and stored in the JSON
# so that tests need no R.  Illness-death model: progression (exponential, rate 0.08 per
# month, times 0.7 on the experimental arm), death before progression (rate 0.01),
# post-progression death (rate 0.06 x exp(0.5 x1 + 0.3 x2)); control patients who
# progress switch with probability expit(0.3 - 1.0 x1 - 0.5 x2), after which their
# post-progression death rate is times 0.7; administrative censoring uniform on 12-48
# months.
#
# Writes tests/reference/r/crossover_reference.json (read by tests/test_crossover.py).
# Run from the repository root:  Rscript tests/reference/r/make_crossover_reference.R
# Needs: survival, jsonlite.

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

set.seed(20261206)
n <- 400
arm <- rbinom(n, 1, 0.5)
x1 <- rbinom(n, 1, 0.4)
x2 <- rnorm(n)
t01 <- rexp(n, 0.08 * ifelse(arm == 1, 0.7, 1))
t02 <- rexp(n, 0.01)
prog <- t01 < t02
p_sw <- plogis(0.3 - 1.0 * x1 - 0.5 * x2)
sw_latent <- arm == 0 & prog & runif(n) < p_sw
rate12 <- 0.06 * exp(0.5 * x1 + 0.3 * x2) * ifelse(sw_latent, 0.7, 1)
death <- ifelse(prog, t01 + rexp(n, rate12), t02)
cens <- runif(n, 12, 48)
time <- pmin(death, cens)
event <- as.integer(death <= cens)
prog_obs <- prog & t01 < time
progression_months <- ifelse(prog_obs, t01, NA)
crossover <- as.integer(sw_latent & prog_obs)
crossover_months <- ifelse(crossover == 1, t01, NA)
d <- data.frame(time, event, arm, x1, x2, crossover, crossover_months, progression_months)

itt <- coxph(Surv(time, event) ~ arm, data = d, ties = "efron")
cut <- crossover == 1
pp <- coxph(Surv(ifelse(cut, crossover_months, time), ifelse(cut, 0L, event)) ~ arm,
            data = d, ties = "efron")

reached <- d$arm == 0 & prog_obs
sm <- glm(crossover ~ x1 + x2, family = binomial, data = d[reached, ])
p_hat <- rep(NA_real_, n)
p_hat[reached] <- fitted(sm)
split <- reached & !cut
rows <- data.frame(
  id = seq_len(n), start = 0,
  stop = ifelse(cut, crossover_months, ifelse(split, progression_months, time)),
  event = ifelse(cut | split, 0L, event), arm = arm, w = 1
)
after <- data.frame(
  id = which(split), start = progression_months[split], stop = time[split],
  event = event[split], arm = arm[split], w = 1 / (1 - p_hat[split])
)
cp <- rbind(rows, after)
ipcw <- coxph(Surv(start, stop, event) ~ arm, data = cp, weights = w, cluster = id,
              ties = "efron")

num <- function(x) ifelse(is.na(x), "NaN", x)
out <- list(
  data = list(time = time, event = event, arm = arm, x1 = x1, x2 = x2, crossover = crossover,
              crossover_months = num(crossover_months),
              progression_months = num(progression_months)),
  itt = list(coef = unname(coef(itt)), se = unname(sqrt(diag(vcov(itt))))),
  per_protocol = list(coef = unname(coef(pp)), se = unname(sqrt(diag(vcov(pp))))),
  ipcw = list(coef = unname(coef(ipcw)), robust_se = unname(sqrt(diag(vcov(ipcw)))),
              switch_model = unname(coef(sm)), switchers = sum(cut), at_decision = sum(reached)),
  r_version = R.version.string, survival_version = as.character(packageVersion("survival"))
)
write(toJSON(out, digits = NA, auto_unbox = TRUE), "tests/reference/r/crossover_reference.json")
