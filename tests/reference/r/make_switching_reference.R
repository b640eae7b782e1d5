# Reference values for estimators/switching.py from R survival (coxph, survfit) and glm.
#
# Data: tests/reference/data/switching_400.csv (400 patients of the built-in switching
# scenario, written by make_switching_data.py).  Covariates age (linear), ecog (factor,
# reference "0"), visceral, adverse_event.  Efron ties.
#   ever_switched  coxph(Surv(os_months, os_event) ~ switched + covariates)
#   td_cox         long (start, stop] frame, coxph(Surv(start, stop, event) ~
#                  switched_now + covariates, cluster = id): coefficient, robust and
#                  model-based SE
#   landmark       at 6 months, among os_months > 6: exposure switch_months <= 6, time
#                  os_months - 6; "censor_later": the unswitched censored at a later switch
#   ccw            grace 6, horizon 36, weight grid 0.25 months.  Arm never: clones
#                  censored at the switch, weights exp(H_s(mid of interval) * risk) from
#                  coxph(Surv(min(switch, os), switched) ~ covariates) and its Breslow
#                  baseline (basehaz(centered = FALSE)); arm grace: unswitched clones
#                  censored at 6, switchers by 6 weighted 1 / p after 6, p from
#                  glm(switched by 6 ~ covariates, binomial) among os_months > 6.  Each
#                  clone split at the grid (survSplit), weighted survfit of the (start,
#                  stop] pieces: S(36) and RMST(36) per arm.
#
# Writes tests/reference/r/switching_reference.json (read by tests/test_switching.py; CI
# has no R).  Run from the repository root:
#   Rscript tests/reference/r/make_switching_reference.R
# Needs: survival, jsonlite.

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

d <- read.csv("tests/reference/data/switching_400.csv", colClasses = c(ecog = "character"))
d$ecog <- factor(d$ecog, levels = c("0", "1", "2+", "unknown"))
has <- !is.na(d$switch_months)
d$switched <- as.integer(has)
rhs <- "age + ecog + visceral + adverse_event"
ctl <- coxph.control(eps = 1e-12, toler.chol = 1e-13, iter.max = 100)

coef_se <- function(fit, name) {
  list(coef = unname(coef(fit)[name]), se = unname(sqrt(diag(vcov(fit)))[match(name, names(coef(fit)))]),
       naive_se = unname(sqrt(diag(fit$naive.var %||% vcov(fit)))[match(name, names(coef(fit)))]))
}
`%||%` <- function(a, b) if (is.null(a)) b else a

ever <- coxph(as.formula(paste("Surv(os_months, os_event) ~ switched +", rhs)), data = d,
              ties = "efron", control = ctl)

l1 <- data.frame(id = d$id, start = 0, stop = ifelse(has, d$switch_months, d$os_months),
                 event = ifelse(has, 0L, d$os_event), switched_now = 0L)
l2 <- data.frame(id = d$id[has], start = d$switch_months[has], stop = d$os_months[has],
                 event = d$os_event[has], switched_now = 1L)
long <- rbind(l1, l2)
long <- cbind(long, d[match(long$id, d$id), c("age", "ecog", "visceral", "adverse_event")])
td <- coxph(as.formula(paste("Surv(start, stop, event) ~ switched_now +", rhs)), data = long,
            cluster = id, ties = "efron", control = ctl)

lm_fit <- function(censor_later) {
  x <- d[d$os_months > 6, ]
  x$exposed <- as.integer(!is.na(x$switch_months) & x$switch_months <= 6)
  x$t <- x$os_months - 6
  x$e <- x$os_event
  if (censor_later) {
    later <- !is.na(x$switch_months) & x$switch_months > 6
    x$t[later] <- x$switch_months[later] - 6
    x$e[later] <- 0L
  }
  coxph(as.formula(paste("Surv(t, e) ~ exposed +", rhs)), data = x, ties = "efron",
        control = ctl)
}
lm0 <- lm_fit(FALSE)
lm1 <- lm_fit(TRUE)

# ---- clone-censor-weight ----
grace <- 6; tau <- 36; step <- 0.25
edges <- sort(unique(c(seq(0, tau - 1e-12, by = step), grace, tau)))
mid <- (head(edges, -1) + tail(edges, -1)) / 2
d$t_s <- ifelse(has, d$switch_months, d$os_months)
sw <- coxph(as.formula(paste("Surv(t_s, switched) ~", rhs)), data = d, ties = "efron",
            control = ctl)
X <- model.matrix(as.formula(paste("~", rhs)), data = d)[, -1]
risk <- as.vector(exp(X %*% coef(sw)))
bh <- basehaz(sw, centered = FALSE)
H_at <- function(t) { i <- findInterval(t, bh$time); ifelse(i == 0, 0, bh$hazard[pmax(i, 1)]) }
c_never <- H_at(mid)

by_g <- has & d$switch_months <= grace
followed <- d$os_months > grace
lr <- glm(as.formula(paste("by_g ~", rhs)), family = binomial,
          data = cbind(d, by_g = as.integer(by_g))[followed, ],
          control = glm.control(epsilon = 1e-14, maxit = 100))
r_grace <- rep(0, nrow(d))
r_grace[followed & by_g] <- -log(fitted(lr)[by_g[followed]])
c_grace <- as.numeric(head(edges, -1) >= grace)

arm_curve <- function(stop, event, r, cvec) {
  a <- data.frame(id = seq_along(stop), tstart = 0, tstop = stop, event = event, r = r)
  s <- survSplit(Surv(tstart, tstop, event) ~ ., data = a, cut = edges[-c(1, length(edges))],
                 start = "tstart", end = "tstop")
  k <- findInterval(s$tstart, edges, rightmost.closed = TRUE)
  s$w <- exp(cvec[pmin(k, length(cvec))] * s$r)
  s <- s[s$tstart < tau, ]
  f <- survfit(Surv(tstart, tstop, event) ~ 1, data = s, weights = w)
  keep <- f$time <= tau & f$n.event > 0
  tt <- f$time[keep]; ss <- f$surv[keep]
  list(surv = if (length(ss)) tail(ss, 1) else 1,
       rmst = sum(c(1, ss) * diff(c(0, tt, tau))))
}
never <- arm_curve(ifelse(has, d$switch_months, d$os_months),
                   ifelse(has, 0L, d$os_event), risk, c_never)
gr <- arm_curve(ifelse(followed & !by_g, grace, d$os_months),
                ifelse(followed & !by_g, 0L, d$os_event), r_grace, c_grace)

out <- list(
  ever_switched = coef_se(ever, "switched"),
  td_cox = coef_se(td, "switched_now"),
  landmark = coef_se(lm0, "exposed"),
  landmark_censor_later = coef_se(lm1, "exposed"),
  ccw = list(surv_grace = gr$surv, surv_never = never$surv, rmst_grace = gr$rmst,
             rmst_never = never$rmst, surv_diff = gr$surv - never$surv,
             rmst_diff = gr$rmst - never$rmst,
             switch_coef = unname(coef(sw)), logistic_coef = unname(coef(lr)))
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/r/switching_reference.json")
