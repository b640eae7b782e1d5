# Reference values for counting-process (start, stop] Cox fits, from R survival::coxph.
#
# Data: survival's `heart` (Stanford heart transplant, jasa1 long format: start, stop,
# event, age, year, surgery, transplant, id; 172 rows, 103 patients), stored in the JSON
# so that tests need no R.  Fits: coxph(Surv(start, stop, event) ~ age + year + surgery +
# transplant, cluster = id) with ties "efron" and "breslow"; stored coef, naive (model)
# variance, robust (cluster = id) variance and the log partial likelihood at the estimate.
#
# Writes tests/reference/r/cpcox_reference.json (read by tests/test_cox_counting.py; CI has
# no R).  Run from the repository root:  Rscript tests/reference/r/make_cpcox_reference.R
# Needs: survival, jsonlite.

suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

d <- survival::heart
d$transplant <- as.numeric(as.character(d$transplant))
covariates <- c("age", "year", "surgery", "transplant")
ctl <- coxph.control(eps = 1e-12, toler.chol = 1e-15, iter.max = 200)
cases <- list()
for (ties in c("efron", "breslow")) {
  fit <- coxph(Surv(start, stop, event) ~ age + year + surgery + transplant,
               data = d, ties = ties, cluster = id, control = ctl)
  cases[[length(cases) + 1]] <- list(
    name = paste0("heart_", ties), ties = ties, covariates = covariates,
    coef = unname(coef(fit)),
    naive_var = unname(as.vector(fit$naive.var)),
    robust_var = unname(as.vector(fit$var)),
    loglik = unname(fit$loglik[2])
  )
}
out <- list(
  data = list(start = d$start, stop = d$stop, event = d$event, age = d$age,
              year = d$year, surgery = d$surgery, transplant = d$transplant, id = d$id),
  cases = cases
)
write_json(out, "tests/reference/r/cpcox_reference.json", digits = NA, auto_unbox = TRUE)
